"""NER vs NLI: the same robustness measures side by side, on scales that can be compared.

Entity F1 and accuracy are different units and the two baselines sit at different distances
from chance and from the ceiling, so the verdict rests on *relative* changes (see
:mod:`xstilts.analysis.normalise`) and on shares of languages, not on raw points. Raw points are
still shown, for readers who think in them.

Primary measure: the mean relative change over zero-shot languages. Its NER-minus-NLI
difference gets a bootstrap CI from replicates that resample each target's test examples and
share the seed draw (a seed's intermediate model feeds both targets). A target "is more robust"
under an intermediate task when that CI excludes zero; otherwise the data do not separate them.
The other measures are secondary and compared by point estimate (or by CI where one exists).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from xstilts.analysis.bootstrap import percentile_ci


@dataclass(frozen=True)
class Measure:
    key: str
    label: str
    better: str | None  # "higher" | "lower" | None (descriptive only)
    short: str = ""  # for prose
    primary: bool = False


MEASURES: tuple[Measure, ...] = (
    Measure(
        "mean_rel",
        "mean relative change over zero-shot languages",
        "higher",
        "mean relative change",
        primary=True,
    ),
    Measure("mean_delta", "mean change over zero-shot languages (points)", "higher", "mean change in points"),
    Measure("worst_rel", "relative change of the worst-affected language", "higher", "worst language"),
    Measure(
        "worst_k_rel", "mean relative change of the k worst-affected languages", "higher", "worst-k languages"
    ),
    Measure(
        "share_hurt", "share of zero-shot languages significantly hurt", "lower", "share of languages hurt"
    ),
    Measure(
        "share_improved",
        "share of zero-shot languages significantly improved",
        "higher",
        "share of languages improved",
    ),
    Measure(
        "rel_std", "spread (std) of the relative change across languages", "lower", "spread across languages"
    ),
    Measure(
        "gap_change", "change of the transfer gap (points; negative = gap closes)", "lower", "transfer gap"
    ),
    Measure("seed_std_change", "change of the average seed std (points)", "lower", "seed variability"),
    Measure(
        "selection_loss_change",
        "change of the English-dev selection loss (points)",
        "lower",
        "checkpoint-selection loss",
    ),
    Measure(
        "spearman_rho", "Spearman rho of change vs baseline score", None, "rank correlation with baseline"
    ),
)
CI_MEASURES = {"mean_rel", "mean_delta", "gap_change"}
COMPARISON_COLUMNS = [
    "intermediate",
    "measure",
    "label",
    "short",
    "primary",
    "better",
    "ner",
    "nli",
    "ner_ci_lo",
    "ner_ci_hi",
    "nli_ci_lo",
    "nli_ci_hi",
    "ner_minus_nli",
    "diff_ci_lo",
    "diff_ci_hi",
    "favours",
    "confident",
]


def _values(
    target: str,
    inter: str,
    summary: pd.DataFrame,
    robustness: pd.DataFrame,
    selection: pd.DataFrame,
    baseline: str,
) -> dict[str, float]:
    """Every measure's value for one (target, intermediate); NaN where it cannot be computed."""
    out: dict[str, float] = {m.key: float("nan") for m in MEASURES}
    s = summary[(summary["target"] == target) & (summary["intermediate"] == inter)]
    if len(s):
        row = s.iloc[0]
        for key in (
            "mean_rel",
            "mean_delta",
            "worst_rel",
            "worst_k_rel",
            "share_hurt",
            "share_improved",
            "rel_std",
            "gap_change",
        ):
            out[key] = float(row[key]) if pd.notna(row[key]) else float("nan")
        for key in ("mean_rel", "mean_delta", "gap_change"):
            lo, hi = (f"{key}_lo", f"{key}_hi") if key != "gap_change" else ("gap_change_lo", "gap_change_hi")
            out[f"{key}_lo"], out[f"{key}_hi"] = float(row[lo]), float(row[hi])

    def change(frame: pd.DataFrame, col: str) -> float:
        t = frame[frame["target"] == target].set_index("intermediate")[col]
        if inter in t.index and baseline in t.index:
            return float(t[inter] - t[baseline])
        return float("nan")

    out["seed_std_change"] = change(robustness, "avg_seed_std")
    out["selection_loss_change"] = change(selection, "mean_loss")
    r = robustness[(robustness["target"] == target) & (robustness["intermediate"] == inter)]
    if len(r):
        out["spearman_rho"] = float(r.iloc[0]["spearman_rho"])
    return out


def _favours(diff: float, lo: float, hi: float, better: str | None, has_ci: bool) -> tuple[str, bool]:
    """Which target the measure calls more robust, and whether a CI backs that call."""
    if better is None or not np.isfinite(diff):
        return "n/a", False
    sign = 1.0 if better == "higher" else -1.0
    if has_ci and np.isfinite(lo) and np.isfinite(hi):
        if lo > 0 or hi < 0:
            return ("NER" if sign * diff > 0 else "NLI"), True
        return "neither", True
    if abs(diff) < 1e-12:
        return "tie", False
    return ("NER" if sign * diff > 0 else "NLI"), False


def compare_targets(
    summary: pd.DataFrame,
    robustness: pd.DataFrame,
    selection: pd.DataFrame,
    replicates: dict[tuple[str, str], dict[str, np.ndarray]],
    ner: str = "panx",
    nli: str = "xnli",
    baseline: str = "none",
    level: float = 0.95,
) -> pd.DataFrame:
    """Long table: one row per (intermediate setting, measure), NER and NLI in columns."""
    settings = sorted(
        (
            set(summary.loc[summary["target"].isin([ner, nli]), "intermediate"])
            | set(robustness.loc[robustness["target"].isin([ner, nli]), "intermediate"])
        )
        - {baseline}
    )
    rows = []
    for inter in settings:
        a = _values(ner, inter, summary, robustness, selection, baseline)
        b = _values(nli, inter, summary, robustness, selection, baseline)
        for m in MEASURES:
            diff = a[m.key] - b[m.key]
            lo = hi = float("nan")
            has_ci = m.key in CI_MEASURES
            if has_ci:
                ra = replicates.get((ner, inter), {}).get(m.key)
                rb = replicates.get((nli, inter), {}).get(m.key)
                if ra is not None and rb is not None:
                    lo, hi = percentile_ci(ra - rb, level)
            favours, confident = _favours(diff, lo, hi, m.better, has_ci)
            rows.append(
                {
                    "intermediate": inter,
                    "measure": m.key,
                    "label": m.label,
                    "short": m.short,
                    "primary": m.primary,
                    "better": m.better or "",
                    "ner": a[m.key],
                    "nli": b[m.key],
                    "ner_ci_lo": a.get(f"{m.key}_lo", float("nan")),
                    "ner_ci_hi": a.get(f"{m.key}_hi", float("nan")),
                    "nli_ci_lo": b.get(f"{m.key}_lo", float("nan")),
                    "nli_ci_hi": b.get(f"{m.key}_hi", float("nan")),
                    "ner_minus_nli": diff,
                    "diff_ci_lo": lo,
                    "diff_ci_hi": hi,
                    "favours": favours,
                    "confident": confident,
                }
            )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
