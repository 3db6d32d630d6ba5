"""The fast calibration check: simulated experiments with known effects through the real analyze().

The full tables (200 experiments per scenario) are in docs/statistics.md, made by
scripts/calibrate.py; this keeps the two failure modes out of the suite in under a minute:
claiming a direction when nothing differs, and intervals that miss the truth.
"""

from __future__ import annotations

import time

from xstilts.analysis.calibration import Scenario, run_scenario, scenarios, summarise, zero_shot_only


def test_no_effect_rarely_gets_a_verdict_and_intervals_cover() -> None:
    """Issue 13 reproducer 1 made 29 of 80 null experiments answer 'more robust for NER'."""
    started = time.perf_counter()
    null = next(s for s in scenarios() if s.name == "no effect" and s.size == "quickstart")
    runs = run_scenario(null, 24, n_boot=100, seed=11)
    row = summarise(runs).iloc[0]
    assert row["true NER − NLI (pp)"] == 0.0
    assert (runs["favours"].isin(["NER", "NLI"])).sum() <= 4  # P(≥ 5 of 24 | 5 %) < 0.01
    assert row["coverage per-language Δ"] >= 0.88  # 384 intervals
    assert row["coverage NER − NLI"] >= 0.8 and row["coverage mean Δ"] >= 0.8
    assert time.perf_counter() - started < 120  # ~15 s on an idle 2-core machine


def test_a_large_difference_is_found_in_the_right_direction() -> None:
    """The other failure mode: an instrument too timid to ever answer."""
    size = "1000 items, 5 seeds"
    strong = Scenario("strong", size, zero_shot_only(size, -10.0), 0.0, seed_sd=1.0, lang_seed_sd=1.0)
    runs = run_scenario(strong, 6, n_boot=100, seed=12)
    assert (runs["favours"] == "NLI").sum() >= 5  # NER's transfer is hurt: NLI's is the more robust
    assert (runs["favours"] == "NER").sum() == 0
    assert runs["diff_covered"].mean() >= 0.66
