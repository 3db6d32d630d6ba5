"""Selection strategies: k-shot draws are fixed and never scored, k-shot picks the step its examples
favour, and the four-strategy tables come out of a store written as phase 3 writes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xstilts.analysis import analyze
from xstilts.analysis.strategies import best_step, kshot_draw, kshot_step, scored_mask, usable_ks
from xstilts.evaluation.halves import keep_rows, report_mask, selection_mask
from xstilts.metrics.stats import score_from_stats
from xstilts.store import RunResult, Score, Store

METRIC = "accuracy"


def _rows(correct: np.ndarray) -> np.ndarray:
    correct = np.asarray(correct, dtype=float)
    return np.stack([correct, np.ones_like(correct), np.ones_like(correct)], axis=1)


def test_draws_are_fixed_nested_and_depend_only_on_language_k_and_seed() -> None:
    d10, d50 = kshot_draw(400, 10, "xnli", "de"), kshot_draw(400, 50, "xnli", "de")
    assert np.array_equal(d10, kshot_draw(400, 10, "xnli", "de"))  # no run enters it
    assert set(d10) <= set(d50) and len(set(d50)) == 50
    assert not np.array_equal(d10, kshot_draw(400, 10, "xnli", "fr"))
    assert not np.array_equal(d10, kshot_draw(400, 10, "xnli", "de", seed=1))
    assert usable_ks(150, [10, 50, 100]) == [10, 50] and usable_ks(15, [10]) == []


@pytest.mark.parametrize("k", [10, 50, 100])
def test_kshot_never_scores_its_examples(k: int) -> None:
    n, ks = 400, [10, 50, 100]
    scored = np.flatnonzero(scored_mask(n, ks, "xnli", "de", "en"))
    drawn = kshot_draw(n, k, "xnli", "de")
    assert np.intersect1d(scored, drawn).size == 0
    assert len(scored) == n - 100  # the largest draw is left out for every strategy and every k
    # English is scored on its report half (its selection half chose the English-dev step)
    assert np.array_equal(scored_mask(n, ks, "xnli", "en", "en"), report_mask(n))
    # changing the scored items cannot change the k-shot choice; changing the drawn ones can
    rng = np.random.default_rng(0)
    curve = {s: _rows(rng.random(n) < 0.5) for s in (1, 2, 3)}
    chosen = kshot_step(curve, drawn, METRIC)
    edited = {s: rows.copy() for s, rows in curve.items()}
    other = next(s for s in curve if s != chosen)
    edited[other][scored, 0] = 1.0  # the other step is perfect on every scored item
    assert kshot_step(edited, drawn, METRIC) == chosen
    edited[other][drawn, 0] = 1.0
    assert kshot_step(edited, drawn, METRIC) == other


def test_kshot_picks_the_step_its_examples_favour_and_ties_go_to_the_earliest() -> None:
    n = 200
    drawn = kshot_draw(n, 10, "panx", "sw")
    curve = {}
    for step, good in ((100, 3), (200, 9), (300, 6)):
        correct = np.zeros(n)
        correct[drawn[:good]] = 1.0
        curve[step] = _rows(correct)
    assert kshot_step(curve, drawn, METRIC) == 200
    curve[300] = curve[200].copy()
    assert kshot_step(curve, drawn, METRIC) == 200
    assert best_step({5: float("nan"), 7: float("nan")}) == 5


STEPS = (100, 200, 300, 400)
# English peaks early, the zero-shot languages late: English-dev selection costs them, an oracle does not
LEVELS = {"en": (90, 85, 80, 78), "de": (40, 50, 60, 70), "sw": (35, 45, 55, 65)}


def _write(store: Store, target: str, inter: str, seed: int, n: int, rng: np.random.Generator) -> None:
    bonus = 3.0 if (inter == "sick" and target == "panx") else 0.0
    result = RunResult()
    select, by_step = {}, {}
    for j, step in enumerate(STEPS):
        by_step[step] = {}
        for lang, curve in LEVELS.items():
            p = (curve[j] + (bonus if lang != "en" else 0.0) + rng.normal(0, 1)) / 100.0
            rows = _rows(rng.random(n) < p)
            if lang == "en":
                select[step] = score_from_stats(METRIC, keep_rows(rows, selection_mask(n)))
                rows = keep_rows(rows, report_mask(n))
            by_step[step][lang] = rows
    best = max(STEPS, key=lambda s: (select[s], -s))
    result.selected_step = best
    for step, langs in by_step.items():
        result.scores.append(Score(target, "en", "select", METRIC, select[step], step, "curve"))
        for lang, rows in langs.items():
            value = score_from_stats(METRIC, rows)
            result.scores.append(Score(target, lang, "eval", METRIC, value, step, "curve"))
            result.curve_stats[(target, lang, "eval", METRIC, step)] = rows
            if step == best:
                result.scores.append(Score(target, lang, "eval", METRIC, value, step, "final"))
                result.example_stats[(target, lang, "eval", METRIC)] = rows
    for lang, rows in by_step[STEPS[-1]].items():  # an "average" as good as the last step, plus noise
        avg = rows.copy()
        value = score_from_stats(METRIC, avg)
        result.scores.append(Score(target, lang, "eval", METRIC, value, STEPS[-1], "average-all"))
        result.example_stats[(target, lang, "average-all", METRIC)] = avg
    run_id = f"tgt-{inter}-{target}-s{seed}"
    store.register_run(run_id, "target", inter, target, seed, f"h{seed}", None)
    store.mark_running(run_id)
    store.complete_run(run_id, result, wall_s=1.0)


def test_four_strategies_on_common_items(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    with Store(tmp_path) as store:
        store.conn.execute("PRAGMA synchronous=OFF")
        store.set_meta("primary_metric", {"panx": METRIC, "xnli": METRIC})
        store.set_meta("config", {"target": {"selection": {"k_shot": [10, 100],
                                                            "strategies": ["english", "k-shot", "oracle"]}}})
        for target in ("panx", "xnli"):
            for inter in ("none", "sick"):
                for seed in range(3):
                    _write(store, target, inter, seed, 600, rng)
    a = analyze(tmp_path, n_boot=40)
    labels = list(dict.fromkeys(a.strategies["strategy"]))
    assert labels == ["english", "k-shot-10", "k-shot-100", "average-all", "oracle"]
    de = a.strategies[(a.strategies["target"] == "xnli") & (a.strategies["intermediate"] == "none")
                      & (a.strategies["language"] == "de")].set_index("strategy")
    assert set(de["n_scored"]) == {500}  # every strategy on the same 600 − 100 items
    assert de.at["english", "vs_english"] == 0.0
    assert set(de.at["english", "steps"].split("/")) == {"100"}
    assert set(de.at["k-shot-100", "steps"].split("/")) <= {"300", "400"}
    assert de.at["oracle", "score"] > de.at["english", "score"] + 15  # English dev picks the worst step here
    assert de.at["k-shot-100", "vs_english_lo"] > 0  # paired interval over seeds and items
    summ = a.strategy_summary
    assert set(summ["strategy"]) == set(labels)
    k100 = summ[(summ["strategy"] == "k-shot-100")]
    assert (k100["gap_to_oracle"] < 3).all()
    assert set(summ["k_needed"].dropna()) <= {10.0, 100.0}
    ans = a.strategy_answer
    assert set(ans["strategy"]) == set(labels) and set(ans["intermediate"]) == {"sick"}
    assert (ans.groupby(["intermediate", "measure"])["most_stable"].sum() == 1).all()
    assert (ans["n_seeds"] == 3).all()
    assert "smallest observed seed spread" in a.summary and "not a tested ranking" in a.summary
    assert {"strategies", "strategy_summary", "strategy_answer"} <= set(a.tables())
