"""Power and seeds needed: the three answers (a number, more test items, more seeds than we search)."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from xstilts.analysis.inference import Estimate
from xstilts.analysis.power import MAX_SEEDS, mde, seeds_needed
from xstilts.report.tables import seeds_text


def _estimate(value: float, s2_pooled: float, v_item: float, n: int = 3) -> Estimate:
    v_seed = s2_pooled * 2 / n
    se = math.sqrt(v_seed + v_item)
    return Estimate(value, se, 2 * n - 2, value - 1, value + 1, 0.5, "seeds+items", v_seed, v_item, s2_pooled, n, n)


def test_mde_is_the_textbook_formula_at_the_level_asked() -> None:
    e = _estimate(1.0, 4.0, 0.5)
    for alpha in (0.05, 0.05 / 6):
        expected = (stats.t.ppf(1 - alpha / 2, e.df) + stats.t.ppf(0.8, e.df)) * e.se
        assert mde(e, alpha) == pytest.approx(expected)


def test_seeds_needed_tells_item_floor_from_too_many_seeds() -> None:
    assert seeds_needed(_estimate(0.5, 4.0, 1.0)) == -1.0  # the items' own noise hides 0.5: more items
    assert seeds_needed(_estimate(0.5, 400.0, 0.0)) == math.inf  # no item floor, but > MAX_SEEDS seeds
    n = seeds_needed(_estimate(2.0, 4.0, 0.0))
    assert 2 <= n <= MAX_SEEDS
    assert [seeds_text(v) for v in (-1.0, math.inf, 7.0)] == ["more test items", f"> {MAX_SEEDS}", "7"]
