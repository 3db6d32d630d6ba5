"""Model-selection sensitivity: English-dev checkpoint choice vs a per-language oracle.

Keung et al. (2020) showed that zero-shot scores move a lot between checkpoints whose English
dev scores are nearly equal, so a reported effect can partly be a checkpoint-selection effect.
For every run we pick the step with the best source-language curve score (what the pipeline
does) and compare each language's score at that step with the best score that language's own
curve ever reached (an oracle no zero-shot setting can use). The difference ``loss >= 0`` is
how much selection by English costs that language.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xstilts.analysis.data import ExperimentData, language_order

RUN_COLUMNS = [
    "target",
    "intermediate",
    "seed",
    "language",
    "selected_step",
    "selected",
    "oracle_step",
    "oracle",
    "loss",
]
SELECTION_COLUMNS = [
    "target",
    "intermediate",
    "language",
    "zero_shot",
    "n_seeds",
    "selected_steps",
    "selected",
    "oracle",
    "loss",
]
SUMMARY_COLUMNS = [
    "target",
    "intermediate",
    "n_languages",
    "mean_loss",
    "max_loss",
    "max_loss_language",
    "share_with_loss",
]


def select_vs_oracle(curve: pd.DataFrame, source: str = "en") -> pd.DataFrame:
    """One run's curve (index: step, columns: language) -> per-language selected vs oracle.

    Ties go to the earliest step, as an early-stopping trainer keeps the first best checkpoint.
    """
    curve = curve.sort_index()
    if source not in curve.columns or curve[source].dropna().empty:
        return pd.DataFrame(columns=RUN_COLUMNS[3:])
    step = curve[source].idxmax()
    rows = []
    for lang in curve.columns:
        col = curve[lang].dropna()
        if col.empty:
            continue
        selected = float(curve.at[step, lang]) if np.isfinite(curve.at[step, lang]) else float("nan")
        o_step = col.idxmax()
        rows.append(
            {
                "language": lang,
                "selected_step": int(step),
                "selected": selected,
                "oracle_step": int(o_step),
                "oracle": float(col[o_step]),
                "loss": float(col[o_step]) - selected,
            }
        )
    return pd.DataFrame(rows, columns=RUN_COLUMNS[3:])


def selection_runs(data: ExperimentData) -> pd.DataFrame:
    """:func:`select_vs_oracle` for every run that logged curves."""
    parts = []
    for (target, inter, seed), sub in data.curves.groupby(["target", "intermediate", "seed"], sort=True):
        curve = sub.pivot_table(index="step", columns="language", values="value", aggfunc="last")
        res = select_vs_oracle(curve, data.source)
        if res.empty:
            data.warnings.append(
                f"{target}/{inter}/seed {seed}: no '{data.source}' curve, cannot select a step"
            )
            continue
        res.insert(0, "seed", int(seed))
        res.insert(0, "intermediate", inter)
        res.insert(0, "target", target)
        parts.append(res)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=RUN_COLUMNS)


def selection_table(data: ExperimentData) -> pd.DataFrame:
    """Per (target, intermediate, language): mean over seeds of selected, oracle and loss."""
    runs = selection_runs(data)
    if runs.empty:
        return pd.DataFrame(columns=SELECTION_COLUMNS)
    rows = []
    for target in sorted(runs["target"].unique()):
        t = runs[runs["target"] == target]
        langs = language_order(t["language"], data.source)
        for inter in data.intermediates(target) or sorted(t["intermediate"].unique()):
            ti = t[t["intermediate"] == inter]
            for lang in langs:
                r = ti[ti["language"] == lang]
                if r.empty:
                    continue
                rows.append(
                    {
                        "target": target,
                        "intermediate": inter,
                        "language": lang,
                        "zero_shot": lang != data.source,
                        "n_seeds": len(r),
                        "selected_steps": "/".join(str(s) for s in r["selected_step"]),
                        "selected": float(r["selected"].mean()),
                        "oracle": float(r["oracle"].mean()),
                        "loss": float(r["loss"].mean()),
                    }
                )
    return pd.DataFrame(rows, columns=SELECTION_COLUMNS)


def selection_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (target, intermediate): how much English-dev selection costs the zero-shot languages."""
    if table.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    rows = []
    zero_shot = table[table["zero_shot"].astype(bool)]
    for (target, inter), sub in zero_shot.groupby(["target", "intermediate"], sort=False):
        loss = sub.set_index("language")["loss"].dropna()
        rows.append(
            {
                "target": target,
                "intermediate": inter,
                "n_languages": len(loss),
                "mean_loss": float(loss.mean()) if len(loss) else float("nan"),
                "max_loss": float(loss.max()) if len(loss) else float("nan"),
                "max_loss_language": str(loss.idxmax()) if len(loss) else None,
                "share_with_loss": float((loss > 1e-9).mean()) if len(loss) else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
