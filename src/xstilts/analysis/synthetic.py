"""Synthetic experiment stores with effects chosen in advance.

Why it lives in the package: tests of the analysis and of the report need the same stores, and
so does anyone who wants to see what ``xstilts report`` produces before spending GPU hours.
Everything goes through the public :class:`~xstilts.store.Store` API, exactly as a real run
writes it: runs registered, marked running, completed with final scores, training curves and
per-example statistics.

Per-example outcomes come from a latent "difficulty" per example shared by every run of a
target+language, mixed with independent noise: the two arms of a comparison are positively
correlated, as real models evaluated on the same test set are, so pairing matters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xstilts.config import BASELINE
from xstilts.evaluation.halves import SELECT_SPLIT, keep_rows, report_mask, selection_mask
from xstilts.metrics.stats import score_from_stats
from xstilts.store import RunResult, Score, Store
from xstilts.tasks.base import EVAL_SPLIT


@dataclass
class SyntheticTarget:
    """One target task: baseline score per language and the true effect of each intermediate task."""

    name: str
    metric: str
    baseline: Mapping[str, float]  # language -> expected baseline score (0-100)
    # intermediate -> effect in points: one number for every language, or per language
    effects: Mapping[str, float | Mapping[str, float]] = field(default_factory=dict)
    n_examples: int = 300
    chance: float = 0.0
    parallel: bool = False  # one latent difficulty per item shared by every language (a translated test set)
    seed_sd: float | None = None  # seed-level shift of all languages of a run (None: the experiment's)
    lang_seed_sd: float = 0.0  # per-language, per-run training noise on top of the shared shift


def add_target_run(
    store: Store,
    *,
    target: str,
    intermediate: str,
    seed: int,
    metric: str,
    finals: Mapping[str, float],
    curves: Mapping[int, Mapping[str, float]] | None = None,
    stats: Mapping[str, np.ndarray] | None = None,
    split: str = EVAL_SPLIT,
    run_id: str | None = None,
) -> str:
    """Register, start and complete one phase-3 run with the given scores; returns its id."""
    run_id = run_id or f"{intermediate}--{target}--s{seed}"
    store.register_run(run_id, "target", intermediate, target, seed, f"hash-{run_id}", None)
    store.mark_running(run_id)
    last = max(curves) if curves else 0
    scores = [Score(target, lang, split, metric, float(v), last, "final") for lang, v in finals.items()]
    for step, by_lang in (curves or {}).items():
        scores += [
            Score(target, lang, split, metric, float(v), int(step), "curve") for lang, v in by_lang.items()
        ]
    ex = {(target, lang, split, metric): np.asarray(a, dtype=np.float64) for lang, a in (stats or {}).items()}
    store.complete_run(run_id, RunResult(scores=scores, example_stats=ex, selected_step=last), wall_s=1.0)
    return run_id


def simulate_stats(
    metric: str, level: float, latent: np.ndarray, rng: np.random.Generator, coupling: float = 0.7
) -> np.ndarray:
    """Per-example ``(hits, n_pred, n_gold)`` rows whose corpus score is about ``level`` (0-100).

    ``latent`` is ``(n, m)`` per-unit difficulty in [0, 1] with NaN for absent units (m = 1 for
    classification; entities per sentence for NER). A unit is correct when its difficulty is
    below the level (with probability ``coupling``) or by an independent coin otherwise.
    """
    q = float(np.clip(level / 100.0, 0.0, 1.0))
    present = np.isfinite(latent)
    shared = rng.random(latent.shape) < coupling
    correct = np.where(shared, np.nan_to_num(latent, nan=2.0) < q, rng.random(latent.shape) < q) & present
    n_gold = present.sum(axis=1).astype(np.float64)
    hits = correct.sum(axis=1).astype(np.float64)
    if metric == "f1":  # every gold entity gets one predicted span, right or wrong
        return np.stack([hits, n_gold, n_gold], axis=1)
    return np.stack([hits, np.ones_like(hits), n_gold], axis=1)


def expected_scores(t: SyntheticTarget, intermediate: str) -> dict[str, float]:
    """The true (noise-free) level of every language under one setting: the analysis' estimands."""
    effect = t.effects.get(intermediate, 0.0)
    out = {}
    for lang, base in t.baseline.items():
        delta = effect.get(lang, 0.0) if isinstance(effect, Mapping) else float(effect)
        out[lang] = float(np.clip(base + delta, 0.0, 100.0))
    return out


def _latent(metric: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if metric != "f1":
        return rng.random((n, 1))
    lat = rng.random((n, 3))
    n_ent = rng.integers(1, 4, size=n)
    lat[np.arange(3)[None, :] >= n_ent[:, None]] = np.nan
    return lat


def write_synthetic_experiment(
    expdir: str | Path,
    targets: Sequence[SyntheticTarget],
    seeds: Sequence[int] = (0, 1, 2),
    seed_sd: float = 0.5,
    steps: Sequence[int] = (100, 200, 300),
    with_stats: bool = True,
    with_curves: bool = True,
    with_baseline: bool = True,
    rng_seed: int = 0,
    durable: bool = False,
    shared_seed_sd: float = 0.0,
    holdout_english: bool = False,
    source: str = "en",
) -> Path:
    """Write a complete store to ``expdir`` and return it.

    Each (intermediate, seed) run's true level on a language is ``baseline + effect`` plus a
    seed-level shift ~ N(0, ``seed_sd``) shared by all languages of that seed's run, a per-language
    shift ~ N(0, ``lang_seed_sd``), and a shift ~ N(0, ``shared_seed_sd``) shared by every target
    trained from the same (intermediate, seed) model. ``holdout_english`` stores English as a real
    run does: scored on the report half of its items (the selection half's rows zeroed).
    """
    expdir = Path(expdir)
    rng = np.random.default_rng(rng_seed)
    shared: dict[tuple[str, int], float] = {}
    with Store(expdir) as store:
        if not durable:  # a throwaway store: skip the per-transaction fsyncs a real run needs
            store.conn.execute("PRAGMA synchronous=OFF")
        store.set_meta("primary_metric", {t.name: t.metric for t in targets})
        store.set_meta("chance", {t.name: t.chance for t in targets})
        store.set_meta("parallel", [t.name for t in targets if t.parallel])
        for t in targets:
            one = _latent(t.metric, t.n_examples, rng) if t.parallel else None
            latents = {lang: one if one is not None else _latent(t.metric, t.n_examples, rng) for lang in t.baseline}
            settings = ([BASELINE] if with_baseline else []) + sorted(t.effects)
            sd = seed_sd if t.seed_sd is None else t.seed_sd
            for inter in settings:
                for seed in seeds:
                    if inter != BASELINE:  # the phase-2 run a real target run starts from
                        store.register_run(f"{inter}--s{seed}", "intermediate", inter, None, seed, "h", None)
                    if (inter, seed) not in shared:
                        shared[(inter, seed)] = rng.normal(0.0, shared_seed_sd) if shared_seed_sd else 0.0
                    shift = rng.normal(0.0, sd) + shared[(inter, seed)]
                    finals, stats = {}, {}
                    for lang, truth in expected_scores(t, inter).items():
                        level = truth + shift + (rng.normal(0.0, t.lang_seed_sd) if t.lang_seed_sd else 0.0)
                        if with_stats:
                            stats[lang] = simulate_stats(t.metric, level, latents[lang], rng)
                            if holdout_english and lang == source:
                                stats[lang] = keep_rows(stats[lang], report_mask(len(stats[lang])))
                            finals[lang] = score_from_stats(t.metric, stats[lang])
                        else:
                            finals[lang] = level
                    curves = None
                    if with_curves:  # each language peaks at its own step; the source peaks last
                        curves = {}
                        for j, step in enumerate(steps):
                            curves[step] = {}
                            for n, (lang, v) in enumerate(finals.items()):
                                peak = len(steps) - 1 if lang == "en" else n % len(steps)
                                curves[step][lang] = v - 1.5 * abs(j - peak)
                    add_target_run(
                        store,
                        target=t.name,
                        intermediate=inter,
                        seed=seed,
                        metric=t.metric,
                        finals=finals,
                        curves=curves,
                        stats=stats or None,
                    )
    return expdir


@dataclass
class StepProfile:
    """Expected scores of one target along a run's evaluated checkpoints, and of its averaged weights.

    ``steps[lang]``: one expected level per evaluated step (``None``: ``baseline[lang]`` at every
    step); ``average[lang]``: the averaged model's level (``None``: the baseline). Levels are before
    the run's seed shifts, which every step and the average of one run share (one training run).
    """

    target: SyntheticTarget
    steps: Mapping[str, Sequence[float]] | None = None
    average: Mapping[str, float] | None = None

    def levels(self, lang: str, n_steps: int) -> list[float]:
        base = float(self.target.baseline[lang])
        got = (self.steps or {}).get(lang)
        return [base] * n_steps if got is None else [float(v) for v in got]

    def average_level(self, lang: str) -> float:
        return float((self.average or {}).get(lang, self.target.baseline[lang]))


def write_strategy_experiment(
    expdir: str | Path,
    profiles: Sequence[StepProfile],
    seeds: Sequence[int] = (1, 2),
    steps: Sequence[int] = (100, 200, 300),
    settings: Sequence[str] = (BASELINE, "treat"),
    shared_seed_sd: float = 0.0,
    run_coupling: float = 0.5,
    rng_seed: int = 0,
    source: str = "en",
) -> Path:
    """A store as phase 3 writes it with per-step rows and an ``average-all`` model; returns ``expdir``.

    Every setting has the same profile (intermediate training changes nothing), so the NER-vs-NLI
    answer is 0 under every strategy. Each run's seed shifts (as :func:`write_synthetic_experiment`)
    move all its steps and its average alike. Checkpoints of one run are more alike than two runs:
    a share ``run_coupling`` of its items get a difficulty of the run's own (uniform, so the level
    is unchanged) used at every step and by the average, the rest the test set's common difficulty.
    English is stored as a real run stores it: the selection half scores the ``select`` curve that
    picks the kept step, the report half is the reported English; the final scores are the kept
    step's, as training keeps it.
    """
    expdir = Path(expdir)
    rng = np.random.default_rng(rng_seed)
    shared: dict[tuple[str, int], float] = {}
    with Store(expdir) as store:
        store.conn.execute("PRAGMA synchronous=OFF")  # a throwaway store
        targets = [p.target for p in profiles]
        store.set_meta("primary_metric", {t.name: t.metric for t in targets})
        store.set_meta("chance", {t.name: t.chance for t in targets})
        store.set_meta("parallel", [t.name for t in targets if t.parallel])
        store.set_meta("config", {"target": {"selection": {"k_shot": [10, 50, 100],
                                                            "strategies": ["english", "k-shot", "average",
                                                                           "oracle"]}}})
        for prof in profiles:
            t = prof.target
            one = _latent(t.metric, t.n_examples, rng) if t.parallel else None
            latents = {lang: one if one is not None else _latent(t.metric, t.n_examples, rng) for lang in t.baseline}
            sd = 0.5 if t.seed_sd is None else t.seed_sd
            for inter in settings:
                for seed in seeds:
                    if inter != BASELINE:
                        store.register_run(f"{inter}--s{seed}", "intermediate", inter, None, seed, "h", None)
                    if (inter, seed) not in shared:
                        shared[(inter, seed)] = rng.normal(0.0, shared_seed_sd) if shared_seed_sd else 0.0
                    shift = rng.normal(0.0, sd) + shared[(inter, seed)]
                    by_step: dict[int, dict[str, np.ndarray]] = {s: {} for s in steps}
                    average: dict[str, np.ndarray] = {}
                    for lang, latent in latents.items():
                        own = np.where(rng.random(latent.shape) < run_coupling, rng.random(latent.shape), latent)
                        own[~np.isfinite(latent)] = np.nan
                        noise = shift + (rng.normal(0.0, t.lang_seed_sd) if t.lang_seed_sd else 0.0)
                        for step, level in zip(steps, prof.levels(lang, len(steps)), strict=True):
                            by_step[step][lang] = simulate_stats(t.metric, level + noise, own, rng)
                        average[lang] = simulate_stats(t.metric, prof.average_level(lang) + noise, own, rng)
                    n = t.n_examples
                    select = {s: score_from_stats(t.metric, keep_rows(by_step[s][source], selection_mask(n)))
                              for s in steps}
                    kept = max(steps, key=lambda s: (select[s], -s))  # ties: the earliest step
                    result = RunResult(selected_step=kept)
                    for step in steps:
                        result.scores.append(Score(t.name, source, SELECT_SPLIT, t.metric, select[step], step,
                                                   "curve"))
                        for lang, rows in by_step[step].items():
                            if lang == source:
                                rows = keep_rows(rows, report_mask(n))
                            value = score_from_stats(t.metric, rows)
                            result.scores.append(Score(t.name, lang, EVAL_SPLIT, t.metric, value, step, "curve"))
                            result.curve_stats[(t.name, lang, EVAL_SPLIT, t.metric, step)] = rows
                            if step == kept:
                                result.scores.append(Score(t.name, lang, EVAL_SPLIT, t.metric, value, step, "final"))
                                result.example_stats[(t.name, lang, EVAL_SPLIT, t.metric)] = rows
                    for lang, rows in average.items():
                        if lang == source:
                            rows = keep_rows(rows, report_mask(n))
                        result.scores.append(Score(t.name, lang, EVAL_SPLIT, t.metric,
                                                   score_from_stats(t.metric, rows), steps[-1], "average-all"))
                        result.example_stats[(t.name, lang, "average-all", t.metric)] = rows
                    run_id = f"{inter}--{t.name}--s{seed}"
                    store.register_run(run_id, "target", inter, t.name, seed, f"hash-{run_id}", None)
                    store.mark_running(run_id)
                    store.complete_run(run_id, result, wall_s=1.0)
    return expdir
