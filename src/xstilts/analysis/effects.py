"""Effects of each intermediate setting against the no-intermediate baseline, with intervals.

Two tables, one estimator (:func:`xstilts.analysis.inference.arm_difference`):

* **per language**: the change of the target's score in each evaluation language (points), its
  interval and p-value, and Holm's correction across the zero-shot languages of the pair (the
  source language is in-language, not transfer, so it is neither counted nor corrected with them);
* **per measure**: the change of every measure of :mod:`xstilts.analysis.measures` (transfer
  ratio, worst language, spread, gap, zero-shot mean, English), each with its interval, the
  smallest effect the experiment could have detected and the seeds that would resolve it.

p-values and intervals come from one ``t`` statistic, so "p < α" and "the 1 − α interval excludes
0" are the same statement (Holm-adjusted p-values are a separate column).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from xstilts.analysis.data import ExperimentData
from xstilts.analysis.inference import Estimate, arm_difference
from xstilts.analysis.measures import MEASURES, Measure, effect_unit
from xstilts.analysis.multiple import holm
from xstilts.analysis.power import power_row
from xstilts.analysis.scores import TargetScores, target_scores

EFFECT_COLUMNS = [
    "target", "intermediate", "language", "zero_shot", "metric", "n_seeds", "n_seeds_baseline", "n_examples",
    "method", "score", "baseline_score", "delta", "se", "df", "ci_lo", "ci_hi", "p", "p_holm", "verdict",
]
MEASURE_COLUMNS = [
    "target", "intermediate", "measure", "label", "unit", "primary", "robustness", "better", "n_seeds",
    "n_seeds_baseline", "method", "value", "baseline_value", "delta", "se", "df", "ci_lo", "ci_hi", "p",
    "item_share", "mde80", "seeds_needed",
]
SUMMARY_COLUMNS = [
    "target", "intermediate", "metric", "n_languages", "n_seeds", "n_seeds_baseline", "method", "improved",
    "hurt", "not_significant", "untested", "worst_language", "worst_delta", "seed_std", "seed_std_baseline",
]


def estimate_columns(e: Estimate) -> dict:
    return {"delta": e.value, "se": e.se, "df": e.df, "ci_lo": e.lo, "ci_hi": e.hi, "p": e.p, "method": e.method}


def _verdict(delta: float, p_adj: float, alpha: float) -> str:
    if not np.isfinite(p_adj):
        return "n/a"
    if p_adj < alpha:
        return "improved" if delta > 0 else "hurt"
    return "n.s."


def measure_arrays(ts: TargetScores, measure: Measure, runs: list[int]) -> tuple[np.ndarray, np.ndarray | None]:
    """The measure per run, and per run and item replicate (None when no language was resampled)."""
    if not runs:
        return np.empty(0), None
    if ts.languages[0] != ts.source:  # no English: nothing is relative to it
        nan = np.full((len(runs), 1), np.nan)
        vals = np.concatenate([nan, ts.values[runs]], axis=1)
        reps = np.concatenate([np.repeat(nan[:, :, None], ts.reps.shape[2], 2), ts.reps[runs]], axis=1)
    else:
        vals, reps = ts.values[runs], ts.reps[runs]
    return measure.fn(vals, ts.chance), (measure.fn(reps, ts.chance) if ts.has_stats.any() else None)


def language_effect(ts: TargetScores, j: int, inter: str, baseline: str, level: float) -> Estimate:
    ri, rb = ts.arm(inter), ts.arm(baseline)
    ri = [r for r in ri if np.isfinite(ts.values[r, j])]
    rb = [r for r in rb if np.isfinite(ts.values[r, j])]
    reps = (ts.reps[ri, j], ts.reps[rb, j]) if ts.has_stats[j] else (None, None)
    return arm_difference(ts.values[ri, j], ts.values[rb, j], *reps, level=level)


def measure_effect(ts: TargetScores, measure: Measure, inter: str, baseline: str, level: float) -> Estimate:
    vi, ri = measure_arrays(ts, measure, ts.arm(inter))
    vb, rb = measure_arrays(ts, measure, ts.arm(baseline))
    return arm_difference(vi, vb, ri, rb, level=level)


@dataclass
class Effects:
    per_language: pd.DataFrame
    measures: pd.DataFrame
    summary: pd.DataFrame
    scores: dict[str, TargetScores] = field(default_factory=dict)


def compute_effects(data: ExperimentData, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                    level: float = 0.95) -> Effects:
    """Every (target, intermediate) effect against the baseline: per language and per measure."""
    lang_rows: list[dict] = []
    measure_rows: list[dict] = []
    summaries: list[dict] = []
    all_scores: dict[str, TargetScores] = {}
    for target in data.targets:
        settings = data.intermediates(target)
        ts = target_scores(data, target, n_boot, seed)
        all_scores[target] = ts
        if data.baseline not in settings:
            data.warnings.append(f"{target}: no '{data.baseline}' baseline runs, so no effects are computed")
            continue
        for inter in settings:
            if inter == data.baseline:
                continue
            rows = []
            for j, lang in enumerate(ts.languages):
                e = language_effect(ts, j, inter, data.baseline, level)
                if e.n_i == 0 or e.n_b == 0:
                    continue
                ri, rb = ts.arm(inter), ts.arm(data.baseline)
                rows.append({
                    "target": target, "intermediate": inter, "language": lang, "zero_shot": lang != data.source,
                    "metric": ts.metric, "n_seeds": e.n_i, "n_seeds_baseline": e.n_b,
                    "n_examples": ts.n_examples.get(lang), "score": float(np.nanmean(ts.values[ri, j])),
                    "baseline_score": float(np.nanmean(ts.values[rb, j])), **estimate_columns(e),
                })
            if not rows:
                continue
            frame = pd.DataFrame(rows)
            zs = frame["zero_shot"].to_numpy()
            frame["p_holm"] = frame["p"]
            frame.loc[zs, "p_holm"] = holm(frame.loc[zs, "p"].to_numpy())
            frame["verdict"] = [_verdict(d, q, alpha) for d, q in zip(frame["delta"], frame["p_holm"], strict=True)]
            lang_rows.extend(frame.to_dict("records"))
            for m in MEASURES:
                vi, ri = measure_arrays(ts, m, ts.arm(inter))
                vb, rb = measure_arrays(ts, m, ts.arm(data.baseline))
                e = arm_difference(vi, vb, ri, rb, level=level)
                measure_rows.append({
                    "target": target, "intermediate": inter, "measure": m.key, "label": m.label,
                    "unit": effect_unit(m), "primary": m.primary, "robustness": m.robustness,
                    "better": m.better or "", "n_seeds": len(vi), "n_seeds_baseline": len(vb),
                    "value": float(np.mean(vi)) if len(vi) else float("nan"),
                    "baseline_value": float(np.mean(vb)) if len(vb) else float("nan"),
                    **estimate_columns(e), **power_row(e, alpha),
                })
            summaries.append(_summary_row(frame, ts, inter, data.baseline))
    return Effects(
        pd.DataFrame(lang_rows, columns=EFFECT_COLUMNS),
        pd.DataFrame(measure_rows, columns=MEASURE_COLUMNS),
        pd.DataFrame(summaries, columns=SUMMARY_COLUMNS),
        all_scores,
    )


def _seed_std(ts: TargetScores, inter: str) -> float:
    """Std over seeds of the arm's mean zero-shot score (descriptive; NaN with one seed)."""
    runs = ts.arm(inter)
    if len(runs) < 2 or len(ts.languages) < 2:
        return float("nan")
    return float(np.nanmean(ts.values[runs][:, 1:], axis=1).std(ddof=1))


def _summary_row(frame: pd.DataFrame, ts: TargetScores, inter: str, baseline: str) -> dict:
    zs = frame[frame["zero_shot"]]
    counts = zs["verdict"].value_counts()
    methods = sorted(set(frame["method"]))
    row = {
        "target": ts.target, "intermediate": inter, "metric": ts.metric, "n_languages": len(zs),
        "n_seeds": int(frame["n_seeds"].max()), "n_seeds_baseline": int(frame["n_seeds_baseline"].max()),
        "method": methods[0] if len(methods) == 1 else "mixed",
        "improved": int(counts.get("improved", 0)), "hurt": int(counts.get("hurt", 0)),
        "not_significant": int(counts.get("n.s.", 0)), "untested": int(counts.get("n/a", 0)),
        "worst_language": None, "worst_delta": float("nan"),
        "seed_std": _seed_std(ts, inter), "seed_std_baseline": _seed_std(ts, baseline),
    }
    if len(zs):
        worst = zs.loc[zs["delta"].idxmin()]
        row["worst_language"], row["worst_delta"] = worst["language"], float(worst["delta"])
    return row
