"""Every statistic on small tables whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xstilts.analysis.multiple import holm
from xstilts.analysis.robustness import rank_correlation, seed_std, transfer_gap, worst_k_mean, worst_language
from xstilts.analysis.selection import select_vs_oracle


def test_holm_by_hand() -> None:
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max keeps 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1
    out = holm([0.01, np.nan, 0.02])  # NaN neither counts nor changes
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.02])
    assert np.isnan(out[1])
    assert holm([]).size == 0


def test_transfer_gap_worst_k_and_worst_language() -> None:
    scores = {"en": 80.0, "de": 70.0, "fr": 60.0, "sw": 40.0}
    assert transfer_gap(scores) == pytest.approx(80 - (70 + 60 + 40) / 3)
    assert np.isnan(transfer_gap({"de": 70.0}))  # no source language
    zero_shot = pd.Series({"de": 70.0, "fr": 60.0, "sw": 40.0, "ja": 50.0})
    assert worst_k_mean(zero_shot, 3) == pytest.approx((40 + 50 + 60) / 3)
    assert worst_k_mean(zero_shot, 10) == pytest.approx(55.0)  # fewer than k: all of them
    assert worst_language(zero_shot) == ("sw", 40.0)


def test_seed_std_by_hand() -> None:
    assert seed_std([70.0, 72.0, 74.0]) == pytest.approx(2.0)  # sample std, ddof=1
    assert np.isnan(seed_std([70.0]))


def test_spearman_by_hand() -> None:
    # ranks differ by d = (-1, 1, -1, 1, 0): rho = 1 - 6 * 4 / (5 * 24) = 0.8
    assert rank_correlation([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])[0] == pytest.approx(0.8)
    assert rank_correlation([1, 2, 3], [30, 20, 10])[0] == pytest.approx(-1.0)
    assert np.isnan(rank_correlation([1, 2, 3], [5, 5, 5])[0])  # constant side
    assert np.isnan(rank_correlation([1, 2], [1, 2])[0])  # too few pairs


def test_selection_vs_oracle_by_hand() -> None:
    curve = pd.DataFrame(
        {"en": [80.0, 85.0, 84.0], "de": [70.0, 68.0, 75.0], "sw": [50.0, 52.0, 51.0]}, index=[100, 200, 300]
    )
    res = select_vs_oracle(curve, "en").set_index("language")
    assert set(res["selected_step"]) == {200}  # best English step
    assert (
        res.loc["de", "selected"] == 68.0 and res.loc["de", "oracle"] == 75.0 and res.loc["de", "loss"] == 7.0
    )
    assert res.loc["de", "oracle_step"] == 300
    assert res.loc["sw", "loss"] == 0.0 and res.loc["en", "loss"] == 0.0


def test_selection_ties_go_to_the_earliest_step() -> None:
    curve = pd.DataFrame({"en": [85.0, 85.0], "de": [60.0, 70.0]}, index=[200, 100])
    res = select_vs_oracle(curve, "en").set_index("language")
    assert res.loc["de", "selected_step"] == 100 and res.loc["de", "loss"] == 0.0
    assert select_vs_oracle(curve.drop(columns="en"), "en").empty  # nothing to select by
