"""Read one experiment's results store into the tidy tables every analysis works from.

Why a separate loader: the store holds several metrics, splits and phases per run; every
statistic downstream must agree on *which* number is "the score" of a run on a language (the
target's primary metric on the evaluation split, from target-phase runs that finished). Doing
that selection once, here, keeps the statistics modules free of store details.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from xstilts.config import BASELINE
from xstilts.identity import check_store
from xstilts.store import Store
from xstilts.tasks.base import EVAL_SPLIT

SOURCE_LANGUAGE = "en"
CEILING = 100.0

#: Used when the store's ``meta`` has no ``primary_metric`` entry for a target.
DEFAULT_PRIMARY_METRIC: dict[str, str] = {
    "panx": "f1",
    "xnli": "accuracy",
    "pawsx": "accuracy",
    "udpos": "token_accuracy",
    "xquad": "squad_f1",
    "mlqa": "squad_f1",
    "tydiqa": "squad_f1",
    "squad": "squad_f1",
}
#: Used when the store's ``meta`` has no ``chance`` entry for a target (0 otherwise).
DEFAULT_CHANCE: dict[str, float] = {"xnli": 100.0 / 3.0, "pawsx": 50.0}

FINAL_COLUMNS = ["target", "intermediate", "seed", "language", "value", "run_id", "metric"]
CURVE_COLUMNS = ["target", "intermediate", "seed", "language", "step", "value", "run_id", "metric"]


@dataclass
class ExperimentData:
    """The scores the analysis needs, already reduced to one metric and split per target."""

    finals: pd.DataFrame  # FINAL_COLUMNS: one row per (target, intermediate, seed, language)
    curves: pd.DataFrame  # CURVE_COLUMNS: one row per (run, language, step)
    # run_id -> language -> (n, 3) per-example stats of the final evaluation
    example_stats: dict[str, dict[str, np.ndarray]]
    metrics: dict[str, str]  # target -> primary metric
    chance: dict[str, float]  # target -> chance score (0-100)
    source: str = SOURCE_LANGUAGE
    baseline: str = BASELINE
    warnings: list[str] = field(default_factory=list)
    parallel: list[str] | None = None  # targets whose test sets are row-parallel (None: not recorded)
    stale: dict[str, str] = field(default_factory=dict)  # run id -> why its data or weights are outdated

    @property
    def targets(self) -> list[str]:
        return sorted(self.finals["target"].unique())

    def intermediates(self, target: str) -> list[str]:
        """Settings of one target, baseline first so tables read 'reference, then treatments'."""
        names = set(self.finals.loc[self.finals["target"] == target, "intermediate"])
        return sorted(names, key=lambda n: (n != self.baseline, n))


def language_order(languages: list[str] | set[str] | pd.Index, source: str = SOURCE_LANGUAGE) -> list[str]:
    """Source language first, then alphabetical: a stable order for every table."""
    return sorted(set(languages), key=lambda lang: (lang != source, lang))


def chance_of(target: str, chance: dict[str, float]) -> float:
    return float(chance.get(target, DEFAULT_CHANCE.get(target, 0.0)))


def _choose_metric(
    target: str, available: list[str], configured: dict[str, str], warnings: list[str]
) -> str | None:
    wanted = configured.get(target) or DEFAULT_PRIMARY_METRIC.get(target)
    if wanted in available:
        return wanted
    if len(available) == 1:
        if wanted is not None:
            warnings.append(f"{target}: primary metric {wanted!r} not in the store; using {available[0]!r}")
        return available[0]
    if available:
        warnings.append(
            f"{target}: cannot tell the primary metric among {sorted(available)}; set meta 'primary_metric'"
        )
    return None


def _choose_split(splits: pd.Series, preferred: str = EVAL_SPLIT) -> str | None:
    values = sorted(set(splits))
    if not values:
        return None
    return preferred if preferred in values else values[0]


def _own_task_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of each target run's own task (a run may also log auxiliary tasks)."""
    own = frame[frame["task"] == frame["target"]]
    missing = sorted(set(frame["target"]) - set(own["target"]))
    if missing:  # the store names the task differently from the target: keep those targets' rows
        own = pd.concat([own, frame[frame["target"].isin(missing)]])
    return own


def load(expdir: str | Path, source: str = SOURCE_LANGUAGE, baseline: str = BASELINE) -> ExperimentData:
    """Load finished target-phase runs from ``expdir``'s store (read-only)."""
    with Store(expdir, readonly=True) as store:
        frame = store.scores_frame()
        configured_metric = store.get_meta("primary_metric", {}) or {}
        configured_chance = store.get_meta("chance", {}) or {}
        parallel = store.get_meta("parallel", None)
        stats_rows = [r for r in store.iter_example_stats() if r["phase"] == "target"]
        stale = check_store(store).stale
    warnings: list[str] = [stale_warning(stale)] if stale else []
    frame = frame[(frame["phase"] == "target") & frame["target"].notna()]
    named_own = set(frame.loc[frame["task"] == frame["target"], "target"])
    frame = _own_task_rows(frame)
    finals_parts, curve_parts = [], []
    metrics: dict[str, str] = {}
    split_of: dict[str, str] = {}
    for target, rows in frame.groupby("target", sort=True):
        fin = rows[rows["kind"] == "final"]
        metric = _choose_metric(
            target, sorted(set(fin["metric"]) or set(rows["metric"])), configured_metric, warnings
        )
        if metric is None:
            continue
        metrics[target] = metric
        fin = fin[fin["metric"] == metric]
        split = _choose_split(fin["split"])
        if split is not None:
            split_of[target] = split
            finals_parts.append(fin[fin["split"] == split])
        cur = rows[(rows["kind"] == "curve") & (rows["metric"] == metric)]
        cur_split = _choose_split(cur["split"])
        if cur_split is not None:
            curve_parts.append(cur[cur["split"] == cur_split])
    finals = pd.concat(finals_parts) if finals_parts else frame.iloc[:0]
    curves = pd.concat(curve_parts) if curve_parts else frame.iloc[:0]

    # One score per (target, intermediate, seed, language): a re-registered run replaces an older one.
    key = ["target", "intermediate", "seed", "language"]
    dup = finals.duplicated(key, keep="last")
    if dup.any():
        warnings.append(
            f"{int(dup.sum())} duplicate final scores (same setting, seed, language); kept the last"
        )
    finals = finals[~dup]
    kept_runs = set(finals["run_id"])
    curves = curves[curves["run_id"].isin(kept_runs)]

    stats: dict[str, dict[str, np.ndarray]] = {}
    for r in stats_rows:
        target = r["target"]
        if (
            r["run_id"] not in kept_runs
            or r["metric"] != metrics.get(target)
            or r["split"] != split_of.get(target)
        ):
            continue
        if r["task"] != target and target in named_own:
            continue
        arr = np.asarray(r["stats"], dtype=np.float64)
        if arr.ndim == 2 and arr.shape[1] == 3 and len(arr) > 0:
            stats.setdefault(r["run_id"], {})[r["language"]] = arr

    chance = {t: float(configured_chance.get(t, DEFAULT_CHANCE.get(t, 0.0))) for t in metrics}
    finals = finals[FINAL_COLUMNS].reset_index(drop=True)
    curves = curves[CURVE_COLUMNS].reset_index(drop=True)
    finals["seed"] = finals["seed"].astype(int)
    curves["seed"] = curves["seed"].astype(int)
    return ExperimentData(finals, curves, stats, metrics, chance, source, baseline, warnings, parallel, stale)


def stale_warning(stale: dict[str, str], shown: int = 3) -> str:
    """One caveat for the summary and the report's warnings, naming the first stale runs."""
    named = "; ".join(f"{run_id}: {why}" for run_id, why in list(stale.items())[:shown])
    more = f"; and {len(stale) - shown} more" if len(stale) > shown else ""
    return (f"{len(stale)} stale run(s), whose data or starting weights changed since they ran, are included "
            f"(`xstilts run CONFIG --rerun-stale` recomputes them): {named}{more}")


def common_length(arrays: list[np.ndarray]) -> int | None:
    """The number of examples most runs agree on (runs that disagree are not aligned)."""
    if not arrays:
        return None
    return Counter(len(a) for a in arrays).most_common(1)[0][0]


SELECT_CURVE_COLUMNS = ["run_id", "step", "value"]
HALF_CURVE_COLUMNS = ["run_id", "language", "step", "half_a", "half_b"]


@dataclass
class SelectionCurves:
    """What the cross-fitted checkpoint-selection analysis needs beyond :class:`ExperimentData`.

    ``select``: the source language's selection-half curve (primary metric), one row per
    (run, step); the step a run selected is its argmax. ``halves``: every language's curve score
    on replication half A and on half B (:func:`~xstilts.evaluation.halves.replication_mask`),
    from the per-step per-example rows; the source language's rows are its report half. Both are
    empty for stores written before they existed.
    """

    select: pd.DataFrame
    halves: pd.DataFrame


def load_selection_curves(expdir: str | Path, data: ExperimentData) -> SelectionCurves:
    """Read the selection-half curves and the per-step half scores of ``data``'s runs (read-only).

    Per-step rows are reduced to two half scores as they are read, so a large store is never
    held in memory as per-example arrays.
    """
    from xstilts.evaluation.halves import SELECT_SPLIT, keep_rows, replication_mask
    from xstilts.metrics.stats import score_from_stats

    runs = set(data.finals["run_id"])
    target_of = dict(zip(data.finals["run_id"], data.finals["target"], strict=True))
    halves = []
    with Store(expdir, readonly=True) as store:
        frame = store.scores_frame(kind="curve")
        for r in store.iter_curve_stats():
            target = target_of.get(r["run_id"])
            if target is None or r["split"] != EVAL_SPLIT or r["metric"] != data.metrics.get(target):
                continue
            arr = np.asarray(r["stats"], dtype=np.float64)
            if arr.ndim != 2 or arr.shape[1] != 3:
                continue
            mask = replication_mask(len(arr))
            halves.append((r["run_id"], r["language"], int(r["step"]),
                           score_from_stats(r["metric"], keep_rows(arr, mask)),
                           score_from_stats(r["metric"], keep_rows(arr, ~mask)), r["task"], target))
    frame = frame[(frame["split"] == SELECT_SPLIT) & frame["run_id"].isin(runs)
                  & (frame["language"] == data.source)]
    frame = frame[frame["metric"] == frame["target"].map(data.metrics)]
    frame = _own_task_rows(frame)
    select = frame[SELECT_CURVE_COLUMNS].drop_duplicates(["run_id", "step"], keep="last").reset_index(drop=True)
    half_frame = _own_task_rows(pd.DataFrame(halves, columns=[*HALF_CURVE_COLUMNS, "task", "target"]))
    return SelectionCurves(select, half_frame[HALF_CURVE_COLUMNS].reset_index(drop=True))
