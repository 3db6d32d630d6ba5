"""The robustness measures by hand, and the property the old relative measure lacked."""

from __future__ import annotations

import numpy as np
import pytest

from xstilts.analysis.measures import (
    BY_KEY,
    PRIMARY,
    english,
    mean_zero_shot,
    ratio_spread,
    transfer_gap,
    transfer_ratio,
    worst_ratio,
)

# two runs; columns: en, de, sw
X = np.array([[80.0, 60.0, 40.0], [60.0, 50.0, 30.0]])


def test_measures_by_hand() -> None:
    c = 100 / 3
    np.testing.assert_allclose(english(X, c), [80, 60])
    np.testing.assert_allclose(mean_zero_shot(X, c), [50, 40])
    np.testing.assert_allclose(transfer_gap(X, c), [30, 20])
    np.testing.assert_allclose(transfer_ratio(X, 0.0), [100 * 50 / 80, 100 * 40 / 60])
    np.testing.assert_allclose(transfer_ratio(X, c), [100 * (50 - c) / (80 - c), 100 * (40 - c) / (60 - c)])
    np.testing.assert_allclose(worst_ratio(X, 0.0), [50, 50])
    np.testing.assert_allclose(ratio_spread(X, 0.0), [np.std([75, 50], ddof=1), np.std([250 / 3, 50], ddof=1)])
    assert PRIMARY.key == "transfer_ratio" and BY_KEY["transfer_gap"].better == "lower"


def test_english_not_above_chance_leaves_the_ratios_undefined() -> None:
    x = np.array([[33.0, 40.0, 35.0]])
    assert np.isnan(transfer_ratio(x, 100 / 3)) and np.isnan(worst_ratio(x, 100 / 3))
    assert transfer_gap(x, 100 / 3)[0] == pytest.approx(33 - 37.5)  # points are still defined


def test_measures_apply_to_item_replicates() -> None:
    reps = np.stack([X, X + 1.0], axis=2)  # (runs, languages, replicates)
    out = transfer_ratio(reps, 0.0)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out[:, 0], transfer_ratio(X, 0.0))


def test_the_effect_has_mean_zero_when_nothing_changes() -> None:
    """Issue 13 reproducer 1: normalised_delta([2, -2], 50, 100/3).mean() was -0.04, so symmetric noise
    around a baseline produced a 'robustness change'. Every measure's effect is now a difference of
    the same statistic of two identically distributed arms: under no effect its mean is zero."""
    rng = np.random.default_rng(0)
    base = np.array([55.0, 48.0, 40.0, 45.0])  # en and three zero-shot languages, near chance like XNLI
    for key in ("transfer_ratio", "worst_ratio", "ratio_spread", "transfer_gap"):
        fn = BY_KEY[key].fn
        d = [fn(base + rng.normal(0, 2.0, (3, 4)), 100 / 3).mean() - fn(base + rng.normal(0, 2.0, (3, 4)), 100 / 3).mean()
             for _ in range(4000)]
        assert abs(np.mean(d)) < 3 * np.std(d) / np.sqrt(len(d)), key


def test_english_only_targets_have_no_transfer_measures_and_analyze_still_answers(tmp_path) -> None:
    """Found by the full-disk test's author: analyze on English-only targets raised in worst_ratio."""
    from xstilts.analysis import analyze
    from xstilts.analysis.measures import worst_ratio
    from xstilts.analysis.synthetic import SyntheticTarget, write_synthetic_experiment

    assert np.isnan(worst_ratio(np.array([[60.0], [62.0]]), 0.0)).all()
    write_synthetic_experiment(tmp_path, [
        SyntheticTarget("panx", "f1", {"en": 70.0}, {"sick": 0.0}, n_examples=40),
        SyntheticTarget("xnli", "accuracy", {"en": 60.0}, {"sick": 0.0}, n_examples=40, chance=100 / 3),
    ])
    result = analyze(tmp_path, n_boot=20, with_selection=False)
    assert result.summary  # an answer (of no verdict), not a traceback
