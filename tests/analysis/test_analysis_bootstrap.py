"""The bootstrap engine: exact re-aggregation, pairing, p-values, and coverage by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from xstilts.analysis.bootstrap import (
    aggregate_totals,
    bootstrap_p,
    example_resample_scores,
    percentile_ci,
    resampled_mean,
    rng_for,
    seed_draws,
)
from xstilts.analysis.effects import paired_effect
from xstilts.analysis.synthetic import _latent, simulate_stats
from xstilts.metrics.stats import score_from_stats, scores_from_resamples


def _ner_stats(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 4, n).astype(float)
    pred = rng.integers(0, 4, n).astype(float)
    hits = np.minimum(gold, pred) * (rng.random(n) < 0.7)
    return np.stack([hits, pred, gold], axis=1)


def test_aggregate_totals_matches_the_metric_contract() -> None:
    stats = _ner_stats(50, 0)
    assert aggregate_totals("f1", stats.sum(axis=0))[0] == pytest.approx(score_from_stats("f1", stats))
    acc = np.array([[1, 1, 1], [0, 1, 1], [1, 1, 1], [1, 1, 1]], dtype=float)
    assert aggregate_totals("accuracy", acc.sum(axis=0))[0] == pytest.approx(75.0)


def test_example_resampling_equals_index_resampling() -> None:
    """Counts @ stats must give exactly what resampling row indices gives."""
    a, b = _ner_stats(40, 1), _ner_stats(40, 2)
    got = example_resample_scores("f1", [a, b], 25, np.random.default_rng(3))
    idx = np.random.default_rng(3).integers(0, 40, size=(25, 40))  # same stream, one chunk
    np.testing.assert_allclose(got[0], scores_from_resamples("f1", a, idx))
    np.testing.assert_allclose(got[1], scores_from_resamples("f1", b, idx))


def test_example_resampling_rejects_unaligned_runs() -> None:
    with pytest.raises(ValueError):
        example_resample_scores("f1", [_ner_stats(10, 0), _ner_stats(11, 0)], 5, np.random.default_rng(0))


def test_rng_for_is_keyed_by_name_not_order() -> None:
    assert rng_for(0, "seeds", "mnli").integers(0, 10**9) == rng_for(0, "seeds", "mnli").integers(0, 10**9)
    assert rng_for(0, "seeds", "mnli").integers(0, 10**9) != rng_for(0, "seeds", "squad").integers(0, 10**9)
    assert rng_for(0, "x").integers(0, 10**9) != rng_for(1, "x").integers(0, 10**9)


def test_seed_draws_and_resampled_mean() -> None:
    assert np.all(seed_draws(1, 7, np.random.default_rng(0)) == 0)
    draws = seed_draws(3, 100, np.random.default_rng(0))
    assert draws.shape == (100, 3) and draws.min() >= 0 and draws.max() <= 2
    scores = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])  # 3 seeds x 2 replicates
    fixed = np.array([[0, 0, 2], [1, 1, 1]])  # replicate 0 draws seeds 0,0,2; replicate 1 draws 1,1,1
    np.testing.assert_allclose(resampled_mean(scores, fixed), [(1 + 1 + 3) / 3, 20.0])


def test_percentile_ci_and_p_value() -> None:
    reps = np.arange(-10.0, 90.0)  # 100 replicates, 11 of them <= 0
    lo, hi = percentile_ci(reps, 0.9)
    assert lo == pytest.approx(np.percentile(reps, 5)) and hi == pytest.approx(np.percentile(reps, 95))
    assert bootstrap_p(reps) == pytest.approx(2 * 12 / 101)
    assert bootstrap_p(np.zeros(50)) == 1.0
    assert bootstrap_p(np.full(99, 3.0)) == pytest.approx(2 / 100)
    assert np.isnan(bootstrap_p(np.array([np.nan]))) and np.isnan(percentile_ci(np.array([]))[0])


def test_pairing_removes_shared_noise() -> None:
    """Two arms that differ by a constant on every example: the paired CI is a point."""
    base = np.stack([np.arange(30) % 2, np.ones(30), np.ones(30)], axis=1).astype(float)
    better = base.copy()
    better[:, 0] = 1.0
    rng = np.random.default_rng(0)
    m = example_resample_scores("accuracy", [better, base], 200, rng)
    draws = seed_draws(1, 200, rng)
    eff = paired_effect(m[:1, 0], m[:1], m[1:, 0], m[1:], draws, draws, True)
    assert eff.method == "examples"
    assert eff.ci_hi - eff.ci_lo > 0  # resampling moves the scores...
    assert np.all(eff.replicates > 0) and eff.p < 0.05  # ...but never the sign of the paired difference


def test_no_interval_without_anything_to_resample() -> None:
    one = np.array([70.0])
    draws = seed_draws(1, 10, np.random.default_rng(0))
    eff = paired_effect(
        one + 2, np.repeat(one[:, None] + 2, 10, 1), one, np.repeat(one[:, None], 10, 1), draws, draws, False
    )
    assert eff.method == "none" and eff.delta == 2.0 and np.isnan(eff.ci_lo) and np.isnan(eff.p)


def test_bootstrap_ci_covers_the_true_effect() -> None:
    """Simulation: entity-F1 arms with a known population difference of 5 points, three seeds
    with seed-level noise, 300 sentences; the 95 % CI must contain 5 in >= 90 % of repetitions."""
    n_rep, n_boot, true_delta = 100, 300, 5.0
    hits = 0
    for rep in range(n_rep):
        rng = np.random.default_rng(10_000 + rep)
        latent = _latent("f1", 300, rng)  # the shared test set: same examples for every run
        runs = [
            simulate_stats("f1", level + rng.normal(0.0, 0.5), latent, rng)
            for level in (60.0 + true_delta,) * 3 + (60.0,) * 3
        ]
        values = np.array([score_from_stats("f1", s) for s in runs])
        scores = example_resample_scores("f1", runs, n_boot, rng)
        draws = seed_draws(3, n_boot, rng)
        eff = paired_effect(values[:3], scores[:3], values[3:], scores[3:], draws, draws, True)
        hits += eff.ci_lo <= true_delta <= eff.ci_hi
    assert hits / n_rep >= 0.90
