"""Four ways to pick a zero-shot model, compared on the same items: English dev, k-shot, averaging, oracle.

English dev often disagrees with the target languages about the best checkpoint (Keung et al.,
2020), so a zero-shot result depends on a choice a real zero-shot user cannot check. The strategies:

``english``
    the step with the best score on the selection half of English dev (what training keeps).
``k-shot-K``
    per target language, ``K`` labelled examples of that language pick the step (ties: the
    earliest step, as the training loop's rule). The ``K`` examples are drawn once per
    (target, language) with a fixed seed: the first ``K`` of one permutation of the language's
    items, a pure function of (target, language, item count, seed) and independent of the run, so
    every run and seed uses the same examples and the draws for K = 10, 50, 100 are nested. English
    is the source language: it keeps its English-dev choice under k-shot.
``average-all`` / ``average-lastK``
    the uniform average of the weights at the evaluated checkpoints, evaluated at the end of the run
    (``[target.selection] average``, :mod:`xstilts.training.averaging`); no step is chosen.
``oracle``
    per language, cross-fitted: the step best on replication half A of the scored items is scored
    on half B and vice versa (the per-example rows of the two halves are combined), so the oracle is
    not the optimistic in-sample maximum of a noisy curve (see :mod:`.selection`).

**Comparability.** Every strategy is scored on the *same* items of a (target, language): those
not drawn for the largest usable ``K`` (the draws are nested, so no k-shot score ever includes an
example that chose its step), and for English its report half (the other half chose the English-dev
step). A ``K`` is usable for a language when it is at most half of its items; if none is, the
language is scored on all its items and has no k-shot row. So the English-dev and oracle numbers
here are on slightly fewer items than in :mod:`.selection` and the effects tables, but every
difference between two strategies is between two models scored on identical items, and the same
item resamples (:mod:`.scores`) pair them in every interval.

**Intervals.** A strategy minus English dev is a paired difference over the same runs
(:func:`~xstilts.analysis.inference.paired_difference`: seeds and the common item component, as
every interval of the analysis, with ``n − 1`` degrees of freedom: two models of one run share its
seed shift, and Satterthwaite's larger ``df`` made 7–8 % of intervals exclude a true 0).
**Calibrated** in simulation (:mod:`.strategy_calibration`, docs/statistics.md, 200 experiments
per scenario, quickstart and study sizes): where no strategy differs, 0.8–3.1 % of intervals
exclude 0 (goal ≤ 5 %) and 96.9–99.2 % cover the truth; where averaging gains 5 points on zero-shot
languages, its intervals cover 96.5–97.3 % and find the gain in 6.6 % (2 seeds) and 14 % (3 seeds)
of them; the oracle's and k-shot's intervals point the wrong way in ≤ 1.4 %. The recomputed
NER-vs-NLI answer claims a false direction in 1.0–5.0 % of experiments (primary measure) and
3.0–6.5 % (transfer gap), as the main analysis does. ``most_stable`` is *not* calibrated as a
finding (see :data:`UNRANKED`). The NER-vs-NLI answer (the primary measure's, and the transfer
gap's, ``effect on NER − effect on NLI``) is recomputed under each strategy with
:func:`~xstilts.analysis.compare.compare_targets`, and its stability is the standard deviation over
seeds of the per-seed answer (NER and NLI runs of one seed share their intermediate model): the
strategy with the smallest spread makes the answer least dependent on the seed.

Per-step rows are read twice from the store (first reduced to a few scores per step, then only the
chosen steps' rows are kept), so a large store is never held in memory as every step's arrays.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from xstilts.analysis.bootstrap import rng_for
from xstilts.analysis.compare import compare_targets
from xstilts.analysis.data import ExperimentData, SelectionCurves, language_order
from xstilts.analysis.effects import measure_arrays
from xstilts.analysis.inference import paired_difference
from xstilts.analysis.measures import BY_KEY, PRIMARY
from xstilts.analysis.scores import TargetScores, target_scores
from xstilts.evaluation.halves import keep_rows, replication_mask, report_mask
from xstilts.metrics.stats import score_from_stats
from xstilts.store import Store
from xstilts.tasks.base import EVAL_SPLIT

DEFAULT_K_SHOT = (10, 50, 100)
ALL_STRATEGIES = ("english", "k-shot", "average", "oracle")
WITHIN = 1.0  # points: "close to the oracle"
#: Why ``most_stable`` is an observation, not a verdict: the calibration found it uninformative.
UNRANKED = ("an observation, not a tested ranking: with a few seeds a standard deviation is too noisy to rank "
            "strategies, and in simulations where every strategy is equally stable the mark went to each of them "
            "(8-39 % of experiments each); docs/statistics.md")
ANSWER_MEASURES = (PRIMARY.key, "transfer_gap")

STRATEGY_COLUMNS = ["target", "intermediate", "language", "zero_shot", "strategy", "k", "n_seeds", "n_scored",
                    "steps", "score", "seed_std", "vs_english", "vs_english_lo", "vs_english_hi", "vs_oracle",
                    "method"]
SUMMARY_COLUMNS = ["target", "intermediate", "strategy", "k", "n_languages", "zero_shot_mean", "seed_std",
                   "vs_english", "gap_to_oracle", "within_1", "k_needed"]
ANSWER_COLUMNS = ["strategy", "intermediate", "measure", "unit", "diff", "diff_lo", "diff_hi", "p", "favours",
                  "n_seeds", "seed_std", "most_stable"]


def kshot_draw(n: int, k: int, target: str, language: str, seed: int = 0) -> np.ndarray:
    """Indices (sorted) of the ``k`` examples of a language that choose its k-shot step.

    The first ``k`` of one seeded permutation of ``range(n)``: the same for every run, nested in ``k``.
    """
    if not 1 <= k <= n:
        raise ValueError(f"cannot draw {k} of {n} examples")
    perm = rng_for(seed, "k-shot", target, language, n).permutation(n)
    return np.sort(perm[:k])


def usable_ks(n: int, ks: Sequence[int]) -> list[int]:
    """The ``k`` that leave at least half of a language's ``n`` items to score."""
    return sorted(k for k in set(ks) if 1 <= k <= n // 2)


def scored_mask(n: int, ks: Sequence[int], target: str, language: str, source: str, seed: int = 0) -> np.ndarray:
    """True for the items every strategy is scored on (see the module doc)."""
    if language == source:
        return report_mask(n)
    mask = np.ones(n, dtype=bool)
    ok = usable_ks(n, ks)
    if ok:
        mask[kshot_draw(n, max(ok), target, language, seed)] = False
    return mask


def best_step(scores: dict[int, float]) -> int:
    """The step with the highest score; ties (and all-undefined scores) go to the earliest step."""
    steps = sorted(scores)
    vals = np.array([scores[s] for s in steps], dtype=np.float64)
    vals = np.where(np.isfinite(vals), vals, -np.inf)
    return int(steps[int(np.argmax(vals))])


def kshot_step(curve: dict[int, np.ndarray], draw: np.ndarray, metric: str) -> int:
    """The step a k-shot user picks: best score on the drawn rows only (``curve``: step -> (n, 3) rows)."""
    return best_step({s: score_from_stats(metric, rows[draw]) for s, rows in curve.items()})


@dataclasses.dataclass
class StrategyRows:
    """Per-example rows of the model each strategy picks, on the common scored items.

    ``rows[label][run_id][language]``: (n, 3) rows, zero outside the scored items. ``steps`` the
    chosen step per (label, run_id, language) (``-1`` for an average, ``-2`` for the cross-fitted
    oracle, which combines two steps). ``labels`` in reading order, ``k_of`` the k of each k-shot label.
    """

    rows: dict[str, dict[str, dict[str, np.ndarray]]]
    steps: dict[tuple[str, str, str], int]
    n_scored: dict[tuple[str, str], int]
    labels: list[str]
    k_of: dict[str, int]


def _english_steps(data: ExperimentData, curves: SelectionCurves | None) -> dict[str, int]:
    """The step each run selected: argmax of its English selection-half curve, else its English curve."""
    out: dict[str, int] = {}
    src = data.curves[data.curves["language"] == data.source]
    for run_id, sub in src.groupby("run_id"):
        out[str(run_id)] = best_step(dict(zip(sub["step"].astype(int), sub["value"], strict=True)))
    if curves is not None and not curves.select.empty:
        for run_id, sub in curves.select.groupby("run_id"):
            out[str(run_id)] = best_step(dict(zip(sub["step"].astype(int), sub["value"], strict=True)))
    return out


def strategy_rows(expdir: str | Path, data: ExperimentData, curves: SelectionCurves | None = None,
                  ks: Sequence[int] = DEFAULT_K_SHOT, strategies: Sequence[str] = ALL_STRATEGIES,
                  seed: int = 0) -> StrategyRows:
    """Read the store twice and assemble every strategy's rows (see the module and class docs)."""
    target_of = dict(zip(data.finals["run_id"], data.finals["target"], strict=True))
    english = _english_steps(data, curves)
    src = data.source

    def wanted(r: dict) -> bool:
        t = target_of.get(r["run_id"])
        return t is not None and r["split"] == EVAL_SPLIT and r["metric"] == data.metrics.get(t) and r["task"] == t

    # pass 1: a few numbers per (run, language, step)
    scalars: dict[tuple[str, str], dict[int, dict[str, float]]] = defaultdict(dict)
    n_of: dict[tuple[str, str], int] = {}
    with Store(expdir, readonly=True) as store:
        for r in store.iter_curve_stats():
            if not wanted(r):
                continue
            t, lang, arr, metric = target_of[r["run_id"]], r["language"], np.asarray(r["stats"]), r["metric"]
            n = len(arr)
            n_of.setdefault((t, lang), n)
            if n != n_of[(t, lang)]:
                continue  # not aligned with the other runs: left out (the effects tables warn about it)
            held = scored_mask(n, ks, t, lang, src, seed)
            half = replication_mask(n)
            vals = {"A": score_from_stats(metric, keep_rows(arr, held & half)),
                    "B": score_from_stats(metric, keep_rows(arr, held & ~half))}
            if lang != src:
                for k in usable_ks(n, ks):
                    vals[f"k{k}"] = score_from_stats(metric, arr[kshot_draw(n, k, t, lang, seed)])
            scalars[(r["run_id"], lang)][int(r["step"])] = vals

    # the steps each strategy chooses
    k_labels = {k: f"k-shot-{k}" for k in sorted(set(ks))} if "k-shot" in strategies else {}
    steps: dict[tuple[str, str, str], int] = {}
    oracle_ab: dict[tuple[str, str], tuple[int, int]] = {}
    for (run_id, lang), by_step in scalars.items():
        e_step = english.get(run_id)
        if e_step is None or e_step not in by_step:
            continue
        steps[("english", run_id, lang)] = e_step
        for k, label in k_labels.items():
            if lang == src:
                steps[(label, run_id, lang)] = e_step
            elif f"k{k}" in by_step[e_step]:
                steps[(label, run_id, lang)] = best_step({s: v[f"k{k}"] for s, v in by_step.items()})
        step_a = best_step({s: v["A"] for s, v in by_step.items()})
        step_b = best_step({s: v["B"] for s, v in by_step.items()})
        oracle_ab[(run_id, lang)] = (step_a, step_b)
        steps[("oracle", run_id, lang)] = -2

    # pass 2: the chosen steps' rows on the scored items
    rows: dict[str, dict[str, dict[str, np.ndarray]]] = defaultdict(lambda: defaultdict(dict))
    need: dict[tuple[str, str, int], list[str]] = defaultdict(list)
    for (label, run_id, lang), step in steps.items():
        if step >= 0:
            need[(run_id, lang, step)].append(label)
    for (run_id, lang), (a, b) in oracle_ab.items():
        need[(run_id, lang, a)].append("oracle:b")  # the step best on half A is scored on half B
        need[(run_id, lang, b)].append("oracle:a")
    averages: set[str] = set()
    with Store(expdir, readonly=True) as store:
        for r in store.iter_curve_stats():
            labels = need.get((r["run_id"], r["language"], int(r["step"]))) if wanted(r) else None
            if not labels:
                continue
            t, lang, arr = target_of[r["run_id"]], r["language"], np.asarray(r["stats"], np.float64)
            held = scored_mask(len(arr), ks, t, lang, src, seed)
            half = replication_mask(len(arr))
            for label in labels:
                if label.startswith("oracle:"):
                    part = keep_rows(arr, held & (half if label == "oracle:a" else ~half))
                    have = rows["oracle"][r["run_id"]].get(lang)
                    rows["oracle"][r["run_id"]][lang] = part if have is None else have + part
                else:
                    rows[label][r["run_id"]][lang] = keep_rows(arr, held)
        if "average" in strategies:
            for r in store.iter_example_stats():
                t = target_of.get(r["run_id"])
                if (t is None or not str(r["split"]).startswith("average") or r["task"] != t
                        or r["metric"] != data.metrics.get(t)):
                    continue
                arr = np.asarray(r["stats"], np.float64)
                if (t, r["language"]) in n_of and len(arr) != n_of[(t, r["language"])]:
                    continue
                held = scored_mask(len(arr), ks, t, r["language"], src, seed)
                rows[r["split"]][r["run_id"]][r["language"]] = keep_rows(arr, held)
                steps[(r["split"], r["run_id"], r["language"])] = -1
                averages.add(r["split"])
    order = [label for label in (["english"] if "english" in strategies else [])
             + list(k_labels.values()) + sorted(averages) + (["oracle"] if "oracle" in strategies else [])
             if label in rows]
    n_scored = {(t, lang): int(scored_mask(n, ks, t, lang, src, seed).sum()) for (t, lang), n in n_of.items()}
    return StrategyRows({label: {run: dict(langs) for run, langs in rows[label].items()} for label in order},
                        steps, n_scored, order, {v: k for k, v in k_labels.items()})


def strategy_data(data: ExperimentData, rows: dict[str, dict[str, np.ndarray]]) -> ExperimentData:
    """``data`` with each run's scores and per-example rows replaced by one strategy's (NaN where it has none)."""
    finals = data.finals.copy()
    values = []
    for run_id, lang, target in zip(finals["run_id"], finals["language"], finals["target"], strict=True):
        arr = rows.get(run_id, {}).get(lang)
        values.append(score_from_stats(data.metrics[target], arr) if arr is not None else np.nan)
    finals["value"] = values
    return dataclasses.replace(data, finals=finals, example_stats=rows, warnings=[])


def _seed_std(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(np.std(values, ddof=1)) if len(values) >= 2 else float("nan")


def strategy_tables(expdir: str | Path, data: ExperimentData, curves: SelectionCurves | None = None,
                    ks: Sequence[int] = DEFAULT_K_SHOT, strategies: Sequence[str] = ALL_STRATEGIES,
                    n_boot: int = 1000, seed: int = 0, alpha: float = 0.05, ner_target: str = "panx",
                    nli_target: str = "xnli") -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(per-language strategy table, per-setting summary with ``k_needed``, NER-vs-NLI answer per strategy)."""
    sr = strategy_rows(expdir, data, curves, ks, strategies, seed)
    if "english" not in sr.labels:
        empty = (pd.DataFrame(columns=STRATEGY_COLUMNS), pd.DataFrame(columns=SUMMARY_COLUMNS),
                 pd.DataFrame(columns=ANSWER_COLUMNS))
        return empty
    scores: dict[str, dict[str, TargetScores]] = {}
    for label in sr.labels:
        sdata = strategy_data(data, sr.rows[label])
        scores[label] = {t: target_scores(sdata, t, n_boot, seed, parallel=None) for t in data.targets}
    run_ids = {(str(i), int(s), t): r for i, s, t, r in
               zip(data.finals["intermediate"], data.finals["seed"], data.finals["target"], data.finals["run_id"],
                   strict=True)}
    level = 1 - alpha
    per_lang, summary = [], []
    for target in data.targets:
        eng = scores["english"][target]
        ora = scores["oracle"][target] if "oracle" in scores else None
        for inter in data.intermediates(target):
            runs = eng.arm(inter)
            if not runs:
                continue
            for label in sr.labels:
                ts = scores[label][target]
                zs_vals, zs_gap, zs_vs_e = [], [], []
                for j, lang in enumerate(ts.languages):
                    v = ts.values[runs, j]
                    if not np.isfinite(v).any():
                        continue
                    d = v - eng.values[runs, j]
                    reps = (ts.reps[runs, j] - eng.reps[runs, j]) if ts.has_stats[j] and eng.has_stats[j] else None
                    e = paired_difference(d, reps, level)
                    vs_o = float(np.nanmean(ora.values[runs, j] - v)) if ora is not None else float("nan")
                    steps = [sr.steps.get((label, run_ids.get((inter, ts.runs[r][1], target), ""), lang))
                             for r in runs]
                    per_lang.append({
                        "target": target, "intermediate": inter, "language": lang, "zero_shot": lang != data.source,
                        "strategy": label, "k": sr.k_of.get(label, np.nan), "n_seeds": int(np.isfinite(v).sum()),
                        "n_scored": sr.n_scored.get((target, lang), 0),
                        "steps": "/".join("avg" if s == -1 else "xfit" if s == -2 else "-" if s is None else str(s)
                                          for s in steps),
                        "score": float(np.nanmean(v)), "seed_std": _seed_std(v), "vs_english": e.value,
                        "vs_english_lo": e.lo, "vs_english_hi": e.hi, "vs_oracle": vs_o, "method": e.method,
                    })
                    if lang != data.source:
                        zs_vals.append(v)
                        zs_gap.append(vs_o)
                        zs_vs_e.append(float(np.nanmean(d)))
                if not zs_vals:
                    continue
                with np.errstate(invalid="ignore"):
                    zs_mean = np.nanmean(np.stack(zs_vals), axis=0)  # per run
                gap = float(np.nanmean(zs_gap)) if zs_gap else float("nan")
                summary.append({
                    "target": target, "intermediate": inter, "strategy": label, "k": sr.k_of.get(label, np.nan),
                    "n_languages": len(zs_vals), "zero_shot_mean": float(np.nanmean(zs_mean)),
                    "seed_std": _seed_std(zs_mean), "vs_english": float(np.nanmean(zs_vs_e)),
                    "gap_to_oracle": gap, "within_1": bool(np.isfinite(gap) and gap <= WITHIN),
                })
    summary_frame = pd.DataFrame(summary, columns=SUMMARY_COLUMNS)
    if not summary_frame.empty:
        for _, sub in summary_frame.groupby(["target", "intermediate"]):
            close = sub[sub["k"].notna() & sub["within_1"]]
            summary_frame.loc[sub.index, "k_needed"] = float(close["k"].min()) if len(close) else np.nan
    per_lang_frame = pd.DataFrame(per_lang, columns=STRATEGY_COLUMNS)
    if not per_lang_frame.empty:
        order = {t: language_order(per_lang_frame.loc[per_lang_frame["target"] == t, "language"], data.source)
                 for t in data.targets}
        per_lang_frame["_l"] = [order[t].index(lang) for t, lang in
                                zip(per_lang_frame["target"], per_lang_frame["language"], strict=True)]
        per_lang_frame["_s"] = per_lang_frame["strategy"].map({s: i for i, s in enumerate(sr.labels)})
        per_lang_frame = per_lang_frame.sort_values(["target", "intermediate", "_l", "_s"], kind="stable")
        per_lang_frame = per_lang_frame.drop(columns=["_l", "_s"]).reset_index(drop=True)
    answer = answer_table(scores, sr.labels, data, ner_target, nli_target, alpha)
    return per_lang_frame, summary_frame, answer


def _per_seed_answer(ner: TargetScores, nli: TargetScores, key: str, inter: str, baseline: str) -> np.ndarray:
    """``(NER_I − NER_B) − (NLI_I − NLI_B)`` of one measure for each seed all four runs share."""
    measure = BY_KEY[key]

    def by_seed(ts: TargetScores, arm: str) -> dict[int, float]:
        runs = ts.arm(arm)
        vals, _ = measure_arrays(ts, measure, runs)
        return {ts.runs[r][1]: float(v) for r, v in zip(runs, vals, strict=True)}

    parts = [by_seed(ner, inter), by_seed(ner, baseline), by_seed(nli, inter), by_seed(nli, baseline)]
    seeds = sorted(set.intersection(*[set(p) for p in parts]))
    return np.array([(parts[0][s] - parts[1][s]) - (parts[2][s] - parts[3][s]) for s in seeds])


def answer_table(scores: dict[str, dict[str, TargetScores]], labels: list[str], data: ExperimentData,
                 ner: str, nli: str, alpha: float) -> pd.DataFrame:
    """The NER-vs-NLI answer under each strategy, with its seed spread; ``most_stable`` marks the smallest."""
    rows = []
    for label in labels:
        by_target = scores[label]
        if ner not in by_target or nli not in by_target:
            continue
        settings = sorted({i for t in (ner, nli) for i in data.intermediates(t)})
        frame = compare_targets(by_target, settings, ner, nli, data.baseline, alpha,
                                tuple(BY_KEY[k] for k in ANSWER_MEASURES))
        for _, r in frame.iterrows():
            per_seed = _per_seed_answer(by_target[ner], by_target[nli], r["measure"], r["intermediate"],
                                        data.baseline)
            rows.append({"strategy": label, "intermediate": r["intermediate"], "measure": r["measure"],
                         "unit": r["unit"], "diff": r["diff"], "diff_lo": r["diff_lo"], "diff_hi": r["diff_hi"],
                         "p": r["p"], "favours": r["favours"], "n_seeds": len(per_seed),
                         "seed_std": _seed_std(per_seed), "most_stable": False})
    frame = pd.DataFrame(rows, columns=ANSWER_COLUMNS)
    for _, sub in frame.groupby(["intermediate", "measure"]):
        spread = sub["seed_std"].dropna()
        if len(spread):
            frame.loc[spread.idxmin(), "most_stable"] = True
    return frame


def most_stable_text(answer: pd.DataFrame) -> str | None:
    """One sentence: which strategy gave the primary NER-vs-NLI answer its smallest seed spread.

    Said as an observation, never as a finding (:data:`UNRANKED`): no test compares the spreads.
    """
    prim = answer[(answer["measure"] == PRIMARY.key) & answer["most_stable"].astype(bool)] if len(answer) else answer
    if prim.empty:
        return None
    parts = [f"{r['intermediate']}: {r['strategy']} (seed std {r['seed_std']:.2f} {r['unit']}, favours "
             f"{r['favours']})" for _, r in prim.iterrows()]
    return ("Checkpoint selection whose NER-vs-NLI answer had the smallest observed seed spread — "
            + "; ".join(parts) + f" ({UNRANKED})")
