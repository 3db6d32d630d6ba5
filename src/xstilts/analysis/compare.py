"""NER vs NLI: does an intermediate task change transfer robustness more for one than the other?

For each intermediate setting and each measure of :mod:`xstilts.analysis.measures` the quantity
is ``(effect on NER) − (effect on NLI)``. The verdict rests on the primary measure (the transfer
ratio, a percentage of English on both targets, so the two are on one scale); the rest are shown
beside it.

Seeds: a seed's intermediate model feeds both targets, so when both targets ran the same seeds the
difference is formed *per seed* (``NER(seed) − NLI(seed)`` in each arm) before the arms are
compared, which keeps that shared model's influence in the variance. Otherwise the two effects
are combined as independent. Items of the two targets are different data and resampled
independently.

Several settings make several headline claims: their primary intervals are simultaneous
(Bonferroni, level ``1 − α/m``) and the adjusted p-value is ``min(1, m·p)``, so an interval that
excludes zero is exactly a claim that survives the correction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xstilts.analysis.effects import measure_arrays, measure_effect
from xstilts.analysis.inference import Estimate, arm_difference, combine
from xstilts.analysis.measures import MEASURES, PRIMARY, Measure, effect_unit
from xstilts.analysis.power import power_row
from xstilts.analysis.scores import TargetScores
from xstilts.config import BASELINE

COMPARISON_COLUMNS = [
    "intermediate", "measure", "label", "unit", "primary", "robustness", "better", "ner", "ner_lo", "ner_hi",
    "nli", "nli_lo", "nli_hi", "diff", "se", "df", "diff_lo", "diff_hi", "level", "p", "p_adj", "method",
    "paired_seeds", "favours", "decided", "mde80", "seeds_needed",
]


def _per_seed(ts: TargetScores, measure: Measure, inter: str) -> tuple[dict[int, float], dict[int, np.ndarray]]:
    runs = ts.arm(inter)
    vals, reps = measure_arrays(ts, measure, runs)
    seeds = [ts.runs[r][1] for r in runs]
    return dict(zip(seeds, vals, strict=True)), ({s: reps[k] for k, s in enumerate(seeds)} if reps is not None else {})


def target_difference(ner: TargetScores, nli: TargetScores, measure: Measure, inter: str, baseline: str,
                      level: float) -> tuple[Estimate, bool]:
    """``effect(NER) − effect(NLI)`` and whether it was formed per seed."""
    arms = {}
    for arm in (inter, baseline):
        a_v, a_r = _per_seed(ner, measure, arm)
        b_v, b_r = _per_seed(nli, measure, arm)
        arms[arm] = (a_v, a_r, b_v, b_r)
    same = all(set(arms[a][0]) == set(arms[a][2]) and arms[a][0] for a in arms)
    if same:
        diffs, reps = [], []
        for arm in (inter, baseline):
            a_v, a_r, b_v, b_r = arms[arm]
            seeds = sorted(a_v)
            diffs.append(np.array([a_v[s] - b_v[s] for s in seeds]))
            have = all(s in a_r and s in b_r for s in seeds)
            reps.append(np.stack([a_r[s] - b_r[s] for s in seeds]) if have else None)
        if reps[0] is None or reps[1] is None:
            reps = [None, None]
        return arm_difference(diffs[0], diffs[1], reps[0], reps[1], level=level), True
    e_ner = measure_effect(ner, measure, inter, baseline, level)
    e_nli = measure_effect(nli, measure, inter, baseline, level)
    return combine(e_ner, e_nli, -1.0, level), False


def favours(e: Estimate, better: str | None) -> str:
    """Which target's transfer the measure calls more robust under the setting, if the CI says so."""
    if not better or not np.isfinite(e.value):
        return "n/a"
    if not np.isfinite(e.p):
        return "no verdict"
    if not e.decided:
        return "neither"
    sign = 1.0 if better == "higher" else -1.0
    return "NER" if sign * e.value > 0 else "NLI"


def compare_targets(scores: dict[str, TargetScores], settings: list[str], ner: str = "panx", nli: str = "xnli",
                    baseline: str = BASELINE, alpha: float = 0.05, measures: tuple[Measure, ...] = MEASURES,
                    ) -> pd.DataFrame:
    """Long table: one row per (intermediate setting, measure)."""
    if ner not in scores or nli not in scores:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    a, b = scores[ner], scores[nli]
    both = [s for s in settings if s != baseline and a.arm(s) and b.arm(s)]
    if not (a.arm(baseline) and b.arm(baseline)):
        both = []
    m = max(len(both), 1)
    rows = []
    for inter in both:
        for measure in measures:
            level = 1 - alpha / m if measure.primary else 1 - alpha
            e, paired = target_difference(a, b, measure, inter, baseline, level)
            e_ner = measure_effect(a, measure, inter, baseline, 1 - alpha)
            e_nli = measure_effect(b, measure, inter, baseline, 1 - alpha)
            p_adj = min(1.0, e.p * m) if measure.primary and np.isfinite(e.p) else e.p
            rows.append({
                "intermediate": inter, "measure": measure.key, "label": measure.label, "unit": effect_unit(measure),
                "primary": measure.primary, "robustness": measure.robustness, "better": measure.better or "",
                "ner": e_ner.value, "ner_lo": e_ner.lo, "ner_hi": e_ner.hi,
                "nli": e_nli.value, "nli_lo": e_nli.lo, "nli_hi": e_nli.hi,
                "diff": e.value, "se": e.se, "df": e.df, "diff_lo": e.lo, "diff_hi": e.hi, "level": level,
                "p": e.p, "p_adj": p_adj, "method": e.method, "paired_seeds": paired,
                # descriptive rows compare two metrics' raw changes: no target is "more robust" by them
                "favours": favours(e, measure.better if measure.robustness else None), "decided": e.decided,
                **power_row(e, 1 - level),  # detectable at the level the row is tested at
            })
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def replicate_halves(scores: dict[str, TargetScores], settings: list[str], ner: str, nli: str, baseline: str,
                     alpha: float, n_boot: int, seed: int) -> pd.DataFrame:
    """The primary comparison on each replication half of every test set (see evaluation.halves)."""
    if ner not in scores or nli not in scores:
        return pd.DataFrame(columns=["half", *COMPARISON_COLUMNS])
    if not (scores[ner].has_stats.all() and scores[nli].has_stats.all()):
        return pd.DataFrame(columns=["half", *COMPARISON_COLUMNS])
    parts = []
    for which, name in ((0, "A"), (1, "B")):
        halves = {t: scores[t].half(which, n_boot, seed) for t in (ner, nli)}
        frame = compare_targets(halves, settings, ner, nli, baseline, alpha, (PRIMARY,))
        frame.insert(0, "half", name)
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)
