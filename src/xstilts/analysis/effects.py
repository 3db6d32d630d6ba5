"""Per-language effect of each intermediate setting against the no-intermediate baseline.

For every target, intermediate setting and evaluation language: the mean change over seeds
(``delta``), a paired bootstrap CI over test examples and seeds, a two-sided bootstrap p-value,
Holm's correction across the zero-shot (non-source) languages, and the resulting verdict
(improved / hurt / n.s.). Aggregates over the zero-shot languages (mean change in points and
relative to headroom, change of the transfer gap) are bootstrapped with the *same* replicates,
so their CIs account for languages sharing one fine-tuned model per seed.

Why the source language is its own family: its effect is in-language, not zero-shot transfer,
so it neither counts among "languages improved / hurt" nor dilutes the correction.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from xstilts.analysis.bootstrap import (
    bootstrap_p,
    example_resample_scores,
    percentile_ci,
    resampled_mean,
    rng_for,
    seed_draws,
)
from xstilts.analysis.data import ExperimentData, chance_of, common_length, language_order
from xstilts.analysis.multiple import holm
from xstilts.analysis.normalise import normalised_delta

EFFECT_COLUMNS = [
    "target",
    "intermediate",
    "language",
    "zero_shot",
    "metric",
    "n_seeds",
    "n_seeds_baseline",
    "paired",
    "n_examples",
    "ci_method",
    "score",
    "baseline_score",
    "delta",
    "ci_lo",
    "ci_hi",
    "p",
    "p_holm",
    "significant",
    "verdict",
    "rel_delta",
    "rel_ci_lo",
    "rel_ci_hi",
]
SUMMARY_COLUMNS = [
    "target",
    "intermediate",
    "metric",
    "n_languages",
    "n_seeds",
    "n_seeds_baseline",
    "paired",
    "ci_method",
    "mean_delta",
    "mean_delta_lo",
    "mean_delta_hi",
    "mean_delta_p",
    "mean_rel",
    "mean_rel_lo",
    "mean_rel_hi",
    "improved",
    "hurt",
    "not_significant",
    "untested",
    "share_improved",
    "share_hurt",
    "worst_language",
    "worst_delta",
    "worst_rel_language",
    "worst_rel",
    "worst_k_rel",
    "delta_std",
    "rel_std",
    "source_delta",
    "gap_change",
    "gap_change_lo",
    "gap_change_hi",
]


@dataclass
class Effects:
    """Per-language effects, their per-(target, intermediate) aggregates, and the replicates."""

    per_language: pd.DataFrame
    summary: pd.DataFrame
    # (target, intermediate) -> {"mean_delta" | "mean_rel" | "gap_change": (n_boot,) replicates}
    replicates: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)


def _draws(
    seed: int,
    n_boot: int,
    intermediate: str,
    baseline: str,
    seeds_i: tuple[int, ...],
    seeds_b: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Seed draws for both arms; one shared draw when both arms ran the same seeds (paired).

    Keyed by setting and seed set only, so the same draw is used for every language and for
    every target: a seed's intermediate model is shared by all of them.
    """
    if seeds_i == seeds_b:
        d = seed_draws(len(seeds_i), n_boot, rng_for(seed, "seeds", intermediate, seeds_i))
        return d, d, True
    d_i = seed_draws(len(seeds_i), n_boot, rng_for(seed, "seeds", intermediate, seeds_i))
    d_b = seed_draws(len(seeds_b), n_boot, rng_for(seed, "seeds", baseline, seeds_b, "vs", intermediate))
    return d_i, d_b, False


def _ci_method(has_stats: bool, n_seeds: int) -> str:
    if has_stats:
        return "examples+seeds" if n_seeds > 1 else "examples"
    return "seeds" if n_seeds > 1 else "none"


def _check_resolution(data: ExperimentData, m: int, n_boot: int, alpha: float) -> None:
    """Warn when too few replicates make every Holm-corrected test fail by construction.

    A bootstrap p-value cannot go below ``2 / (n_boot + 1)``; Holm needs ``m * p < alpha`` for the
    smallest one, so with few replicates and many languages "no significant language" would be
    an artefact of ``n_boot``, not a finding.
    """
    if m and 2.0 / (n_boot + 1) * m >= alpha:
        need = math.ceil(2.0 * m / alpha)
        data.warnings.append(
            f"{n_boot} bootstrap replicates cannot reach p-values small enough to survive Holm's correction "
            f"over {m} languages; per-language significance needs at least {need} replicates"
        )


def _verdict(delta: float, p_adj: float, alpha: float) -> str:
    if not np.isfinite(p_adj):
        return "n/a"
    if p_adj < alpha and delta > 0:
        return "improved"
    if p_adj < alpha and delta < 0:
        return "hurt"
    return "n.s."


@dataclass
class PairedEffect:
    """One comparison of two arms on one language: point estimate, replicates, interval, p."""

    delta: float
    base: float
    replicates: np.ndarray  # (n_boot,) replicate deltas
    base_replicates: np.ndarray  # (n_boot,) replicate baseline scores (for relative changes)
    method: str  # what the interval resamples: examples+seeds | examples | seeds | none
    ci_lo: float
    ci_hi: float
    p: float


def paired_effect(
    values_i: np.ndarray,
    scores_i: np.ndarray,
    values_b: np.ndarray,
    scores_b: np.ndarray,
    draws_i: np.ndarray,
    draws_b: np.ndarray,
    resampled: bool,
    level: float = 0.95,
) -> PairedEffect:
    """Bootstrap the difference of two arms' seed means on one language.

    ``values_*`` are the arms' final scores per seed; ``scores_*`` are ``(n_seeds, n_boot)``
    scores under shared example resamples (``resampled``) or those values repeated; ``draws_*``
    are the seed draws (identical arrays when paired). With neither examples nor more than one
    seed to resample, there is no interval.
    """
    if not resampled:  # never mix example-resampled and fixed scores in one comparison
        n_boot = draws_i.shape[0]
        scores_i = np.repeat(np.asarray(values_i, float)[:, None], n_boot, 1)
        scores_b = np.repeat(np.asarray(values_b, float)[:, None], n_boot, 1)
    rep_b = resampled_mean(scores_b, draws_b)
    reps = resampled_mean(scores_i, draws_i) - rep_b
    method = _ci_method(resampled, max(len(values_i), len(values_b)))
    delta, base = float(np.mean(values_i) - np.mean(values_b)), float(np.mean(values_b))
    if method == "none":
        return PairedEffect(delta, base, reps, rep_b, method, float("nan"), float("nan"), float("nan"))
    lo, hi = percentile_ci(reps, level)
    return PairedEffect(delta, base, reps, rep_b, method, lo, hi, bootstrap_p(reps))


class _TargetScores:
    """One target's final scores as arrays, plus example-resampled scores where stats exist."""

    def __init__(self, data: ExperimentData, target: str, n_boot: int, seed: int):
        fin = data.finals[data.finals["target"] == target]
        self.values = fin.set_index(["intermediate", "seed", "language"])["value"]
        run_ids = fin.set_index(["intermediate", "seed", "language"])["run_id"]
        self.languages = language_order(fin["language"], data.source)
        self.n_examples: dict[str, int] = {}
        self.resampled: dict[str, dict[tuple[str, int], np.ndarray]] = {}
        metric = data.metrics[target]
        for lang in self.languages:
            keys = [(i, s) for (i, s, lg) in run_ids.index if lg == lang]
            arrays = {k: data.example_stats.get(run_ids[(k[0], k[1], lang)], {}).get(lang) for k in keys}
            arrays = {k: a for k, a in arrays.items() if a is not None}
            n = common_length(list(arrays.values()))
            aligned = {k: a for k, a in arrays.items() if len(a) == n}
            if len(aligned) < len(arrays):
                data.warnings.append(
                    f"{target}/{lang}: example stats of {len(arrays) - len(aligned)} run(s) have a different "
                    "number of examples; those runs are not resampled over examples"
                )
            if aligned:
                keys = list(aligned)
                mat = example_resample_scores(
                    metric, [aligned[k] for k in keys], n_boot, rng_for(seed, "examples", target, lang)
                )
                self.resampled[lang] = dict(zip(keys, mat, strict=True))
                self.n_examples[lang] = int(n or 0)

    def seeds(self, intermediate: str, language: str) -> tuple[int, ...]:
        try:
            sub = self.values.xs((intermediate, language), level=("intermediate", "language"))
        except KeyError:
            return ()
        return tuple(sorted(int(s) for s in sub.index))

    def arm(
        self, intermediate: str, seeds: tuple[int, ...], language: str, n_boot: int
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """Final values, (seeds x replicates) scores, and whether those vary with the examples."""
        vals = np.array([self.values[(intermediate, s, language)] for s in seeds], dtype=np.float64)
        res = self.resampled.get(language, {})
        if all((intermediate, s) in res for s in seeds):
            return vals, np.stack([res[(intermediate, s)] for s in seeds]), True
        return vals, np.repeat(vals[:, None], n_boot, axis=1), False


def compute_effects(
    data: ExperimentData,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    level: float = 0.95,
    k: int = 3,
) -> Effects:
    """Bootstrap every (target, intermediate, language) effect against the baseline."""
    rows: list[dict] = []
    summaries: list[dict] = []
    replicates: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for target in data.targets:
        settings = data.intermediates(target)
        if data.baseline not in settings:
            data.warnings.append(
                f"{target}: no '{data.baseline}' baseline runs, "
                "so effects and their statistics are not computed"
            )
            continue
        scores = _TargetScores(data, target, n_boot, seed)
        chance = chance_of(target, data.chance)
        for inter in settings:
            if inter == data.baseline:
                continue
            inter_rows, lang_reps = [], {}
            for lang in scores.languages:
                seeds_i, seeds_b = scores.seeds(inter, lang), scores.seeds(data.baseline, lang)
                if not seeds_i or not seeds_b:
                    continue
                d_i, d_b, paired = _draws(seed, n_boot, inter, data.baseline, seeds_i, seeds_b)
                vi, mi, stats_i = scores.arm(inter, seeds_i, lang, n_boot)
                vb, mb, stats_b = scores.arm(data.baseline, seeds_b, lang, n_boot)
                eff = paired_effect(vi, mi, vb, mb, d_i, d_b, stats_i and stats_b, level)
                delta, base, reps, method = eff.delta, eff.base, eff.replicates, eff.method
                rel_reps = normalised_delta(reps, eff.base_replicates, chance)
                lo, hi, p = eff.ci_lo, eff.ci_hi, eff.p
                rlo, rhi = percentile_ci(rel_reps, level) if method != "none" else (float("nan"),) * 2
                has_stats = stats_i and stats_b
                lang_reps[lang] = (reps, rel_reps)
                inter_rows.append(
                    {
                        "target": target,
                        "intermediate": inter,
                        "language": lang,
                        "zero_shot": lang != data.source,
                        "metric": data.metrics[target],
                        "n_seeds": len(seeds_i),
                        "n_seeds_baseline": len(seeds_b),
                        "paired": paired,
                        "n_examples": scores.n_examples.get(lang) if has_stats else None,
                        "ci_method": method,
                        "score": float(vi.mean()),
                        "baseline_score": base,
                        "delta": delta,
                        "ci_lo": lo,
                        "ci_hi": hi,
                        "p": p,
                        "rel_delta": float(normalised_delta(delta, base, chance)),
                        "rel_ci_lo": rlo,
                        "rel_ci_hi": rhi,
                    }
                )
            if not inter_rows:
                continue
            frame = pd.DataFrame(inter_rows)
            zs = frame["zero_shot"].to_numpy()
            frame["p_holm"] = frame["p"]
            frame.loc[zs, "p_holm"] = holm(frame.loc[zs, "p"].to_numpy())
            frame["significant"] = frame["p_holm"] < alpha
            _check_resolution(data, int(np.isfinite(frame.loc[zs, "p"]).sum()), n_boot, alpha)
            frame["verdict"] = [
                _verdict(d, q, alpha) for d, q in zip(frame["delta"], frame["p_holm"], strict=True)
            ]
            rows.extend(frame.to_dict("records"))
            row, reps = _summarise(frame, lang_reps, data.source, level, k)
            summaries.append(row)
            replicates[(target, inter)] = reps
    per_language = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    summary = pd.DataFrame(summaries, columns=SUMMARY_COLUMNS)
    return Effects(per_language, summary, replicates)


def _summarise(
    frame: pd.DataFrame,
    lang_reps: dict[str, tuple[np.ndarray, np.ndarray]],
    source: str,
    level: float,
    k: int,
) -> tuple[dict, dict[str, np.ndarray]]:
    """Aggregate one (target, intermediate) over its zero-shot languages, replicate by replicate."""
    first = frame.iloc[0]
    zs = frame[frame["zero_shot"]]
    methods = sorted(set(frame["ci_method"]))
    row: dict = {
        "target": first["target"],
        "intermediate": first["intermediate"],
        "metric": first["metric"],
        "n_languages": len(zs),
        "n_seeds": int(frame["n_seeds"].max()),
        "n_seeds_baseline": int(frame["n_seeds_baseline"].max()),
        "paired": bool(frame["paired"].all()),
        "ci_method": methods[0] if len(methods) == 1 else "mixed",
    }
    reps: dict[str, np.ndarray] = {}
    varies = (zs["ci_method"] != "none").any()
    if len(zs):
        d_reps = np.mean([lang_reps[lang][0] for lang in zs["language"]], axis=0)
        with warnings.catch_warnings():  # all-NaN replicate columns when no relative change is defined
            warnings.simplefilter("ignore", RuntimeWarning)
            r_reps = np.nanmean([lang_reps[lang][1] for lang in zs["language"]], axis=0)
        if varies:  # constant replicates would pose as a zero-width interval downstream
            reps["mean_delta"], reps["mean_rel"] = d_reps, r_reps
        row["mean_delta"] = float(zs["delta"].mean())
        row["mean_rel"] = float(zs["rel_delta"].mean()) if zs["rel_delta"].notna().any() else float("nan")
        if varies:
            row["mean_delta_lo"], row["mean_delta_hi"] = percentile_ci(d_reps, level)
            row["mean_delta_p"] = bootstrap_p(d_reps)
            row["mean_rel_lo"], row["mean_rel_hi"] = percentile_ci(r_reps, level)
        counts = zs["verdict"].value_counts()
        row["improved"], row["hurt"] = int(counts.get("improved", 0)), int(counts.get("hurt", 0))
        row["not_significant"], row["untested"] = int(counts.get("n.s.", 0)), int(counts.get("n/a", 0))
        row["share_improved"], row["share_hurt"] = row["improved"] / len(zs), row["hurt"] / len(zs)
        worst = zs.loc[zs["delta"].idxmin()]
        row["worst_language"], row["worst_delta"] = worst["language"], float(worst["delta"])
        rel = zs.dropna(subset=["rel_delta"])
        if len(rel):
            wr = rel.loc[rel["rel_delta"].idxmin()]
            row["worst_rel_language"], row["worst_rel"] = wr["language"], float(wr["rel_delta"])
            row["worst_k_rel"] = float(rel["rel_delta"].nsmallest(k).mean())
        row["delta_std"] = float(zs["delta"].std(ddof=1)) if len(zs) > 1 else float("nan")
        row["rel_std"] = float(rel["rel_delta"].std(ddof=1)) if len(rel) > 1 else float("nan")
    src = frame[~frame["zero_shot"]]
    if len(src) and len(zs):
        row["source_delta"] = float(src["delta"].iloc[0])
        row["gap_change"] = row["source_delta"] - row["mean_delta"]
        if varies or src["ci_method"].iloc[0] != "none":
            g_reps = lang_reps[source][0] - d_reps
            reps["gap_change"] = g_reps
            row["gap_change_lo"], row["gap_change_hi"] = percentile_ci(g_reps, level)
    return row, reps
