"""What phase 2 learned: each intermediate setting's English dev score per task and seed.

Why: an intermediate setting whose model never learned its task (a multi-task run too short for
each task, a learning rate that diverged) answers a different question than the one asked of it —
"does training on X help?" becomes "does a perturbed encoder help?". The effects of such a setting
are still computed; this table lets a reader see which settings they belong to, next to each
task's chance level.
"""

from __future__ import annotations

import pandas as pd

from xstilts.config import BASELINE
from xstilts.errors import XstiltsError
from xstilts.tasks import get_task

COLUMNS = ["intermediate", "task", "metric", "chance", "seed", "score", "step"]


def _primary(task: str) -> tuple[str, float] | None:
    """A task's primary metric and its chance score; None for a task this version does not know."""
    try:
        t = get_task(task)
    except XstiltsError:
        return None
    return t.metric, float(t.chance)


def intermediate_table(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, task, seed): the final English dev score of the task's primary metric.

    ``scores`` is the store's ``scores_frame()``; rows of phase-2 runs are used (the masked-LM
    objective has no dev score and is not listed).
    """
    rows = scores[(scores["phase"] == "intermediate") & (scores["kind"] == "final")
                  & (scores["intermediate"] != BASELINE)]
    out = []
    for (inter, task), group in rows.groupby(["intermediate", "task"], sort=True):
        known = _primary(str(task))
        if known is None:
            continue
        metric, chance = known
        for _, r in group[group["metric"] == metric].sort_values("seed").iterrows():
            out.append({"intermediate": inter, "task": task, "metric": metric, "chance": chance,
                        "seed": int(r["seed"]), "score": float(r["value"]), "step": int(r["step"])})
    return pd.DataFrame(out, columns=COLUMNS)
