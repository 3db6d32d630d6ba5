"""Robustness of zero-shot transfer, per (target, intermediate setting), baseline included.

"Robust" has several faces and a single average hides all of them, so each is its own column:
the average over zero-shot languages (how good), the seed standard deviation (how repeatable),
the worst language and the mean of the worst ``k`` (how bad it gets), the transfer gap to the
source language (how much is lost in transfer, as XTREME reports it), the spread of the effect
across languages (how uneven), and the rank correlation of the effect with the baseline's score
(does intermediate training help the languages that were already good, or the weak ones).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats as sps

from xstilts.analysis.data import ExperimentData, language_order

LANGUAGE_COLUMNS = [
    "target",
    "intermediate",
    "language",
    "zero_shot",
    "n_seeds",
    "mean",
    "seed_std",
    "min",
    "max",
    "baseline_mean",
    "delta",
]
ROBUSTNESS_COLUMNS = [
    "target",
    "intermediate",
    "metric",
    "n_languages",
    "n_seeds",
    "source_score",
    "mean_zero_shot",
    "transfer_gap",
    "avg_seed_std",
    "worst_language",
    "worst_score",
    "worst_k_mean",
    "k",
    "mean_delta",
    "delta_std",
    "spearman_rho",
    "spearman_p",
]


def seed_std(values: np.ndarray | list[float]) -> float:
    """Sample standard deviation over seeds (ddof=1); NaN with fewer than two seeds."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.std(ddof=1)) if v.size > 1 else float("nan")


def transfer_gap(scores: Mapping[str, float] | pd.Series, source: str = "en") -> float:
    """Source-language score minus the mean over every other language (XTREME's gap)."""
    s = pd.Series(scores, dtype=np.float64).dropna()
    others = s.drop(source, errors="ignore")
    if source not in s.index or others.empty:
        return float("nan")
    return float(s[source] - others.mean())


def worst_k_mean(scores: Mapping[str, float] | pd.Series, k: int = 3) -> float:
    """Mean of the ``k`` lowest scores (all of them when there are fewer than ``k``)."""
    s = pd.Series(scores, dtype=np.float64).dropna()
    return float(s.nsmallest(k).mean()) if len(s) else float("nan")


def worst_language(scores: Mapping[str, float] | pd.Series) -> tuple[str | None, float]:
    """The lowest-scoring language and its score (first in order on ties)."""
    s = pd.Series(scores, dtype=np.float64).dropna()
    if s.empty:
        return None, float("nan")
    lang = s.idxmin()
    return str(lang), float(s[lang])


def rank_correlation(x: np.ndarray | pd.Series, y: np.ndarray | pd.Series) -> tuple[float, float]:
    """Spearman's rho and its p-value; NaN with fewer than three pairs or a constant side."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sps.spearmanr(a, b)
    return float(res.statistic), float(res.pvalue)


def language_table(data: ExperimentData) -> pd.DataFrame:
    """Per (target, intermediate, language): seed count, mean, seed std, range, change vs baseline."""
    fin = data.finals
    if fin.empty:
        return pd.DataFrame(columns=LANGUAGE_COLUMNS)
    g = fin.groupby(["target", "intermediate", "language"])["value"]
    table = pd.DataFrame(
        {
            "n_seeds": g.count(),
            "mean": g.mean(),
            "seed_std": g.agg(seed_std),
            "min": g.min(),
            "max": g.max(),
        }
    ).reset_index()
    base = table[table["intermediate"] == data.baseline][["target", "language", "mean"]]
    table = table.merge(base.rename(columns={"mean": "baseline_mean"}), on=["target", "language"], how="left")
    table["delta"] = table["mean"] - table["baseline_mean"]
    table.loc[table["intermediate"] == data.baseline, "delta"] = np.nan  # not an effect: the reference itself
    table["zero_shot"] = table["language"] != data.source
    order = {t: {i: n for n, i in enumerate(data.intermediates(t))} for t in data.targets}
    langs = {
        t: {
            lg: n for n, lg in enumerate(language_order(fin.loc[fin["target"] == t, "language"], data.source))
        }
        for t in data.targets
    }
    table["_o"] = [
        (order[t][i], langs[t][lg])
        for t, i, lg in zip(table["target"], table["intermediate"], table["language"], strict=True)
    ]
    table = table.sort_values(["target", "_o"]).drop(columns="_o").reset_index(drop=True)
    return table[LANGUAGE_COLUMNS]


def robustness_table(data: ExperimentData, languages: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """One row per (target, intermediate), baseline included (its effect columns are NaN)."""
    rows = []
    for (target, inter), sub in languages.groupby(["target", "intermediate"], sort=False):
        scores = sub.set_index("language")["mean"]
        zs = sub[sub["zero_shot"]]
        zs_scores = zs.set_index("language")["mean"]
        worst, worst_score = worst_language(zs_scores)
        rho = p = float("nan")
        mean_delta = delta_std = float("nan")
        if inter != data.baseline and zs["delta"].notna().any():
            d = zs.dropna(subset=["delta"])
            mean_delta = float(d["delta"].mean())
            delta_std = float(d["delta"].std(ddof=1)) if len(d) > 1 else float("nan")
            rho, p = rank_correlation(d["delta"], d["baseline_mean"])
        rows.append(
            {
                "target": target,
                "intermediate": inter,
                "metric": data.metrics.get(target),
                "n_languages": len(zs),
                "n_seeds": int(sub["n_seeds"].max()),
                "source_score": float(scores[data.source]) if data.source in scores.index else float("nan"),
                "mean_zero_shot": float(zs_scores.mean()) if len(zs) else float("nan"),
                "transfer_gap": transfer_gap(scores, data.source),
                "avg_seed_std": float(zs["seed_std"].mean())
                if zs["seed_std"].notna().any()
                else float("nan"),
                "worst_language": worst,
                "worst_score": worst_score,
                "worst_k_mean": worst_k_mean(zs_scores, k),
                "k": k,
                "mean_delta": mean_delta,
                "delta_std": delta_std,
                "spearman_rho": rho,
                "spearman_p": p,
            }
        )
    return pd.DataFrame(rows, columns=ROBUSTNESS_COLUMNS)
