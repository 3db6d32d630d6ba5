"""Item resampling that respects the test sets: shared by runs, shared by parallel languages, halves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xstilts.analysis.bootstrap import aggregate_totals, rng_for
from xstilts.analysis.data import load
from xstilts.analysis.scores import resample_scores, target_scores
from xstilts.analysis.synthetic import SyntheticTarget, add_target_run, write_synthetic_experiment
from xstilts.evaluation.halves import replication_mask
from xstilts.metrics.stats import score_from_stats
from xstilts.store import Store


def _acc_rows(correct: np.ndarray) -> np.ndarray:
    return np.stack([correct.astype(float), np.ones(len(correct)), np.ones(len(correct))], axis=1)


def test_resampling_re_aggregates_exactly() -> None:
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 4, 60).astype(float)
    pred = rng.integers(0, 4, 60).astype(float)
    rows = np.stack([np.minimum(gold, pred), pred, gold], axis=1)
    reps = resample_scores("f1", [rows], 50, rng_for(0, "x"))
    counts_rng = rng_for(0, "x")  # the same stream: rebuild the first resample by hand
    idx = counts_rng.integers(0, 60, size=(50, 60))[0]
    assert reps[0, 0] == pytest.approx(score_from_stats("f1", rows[idx]))
    assert aggregate_totals("f1", rows.sum(axis=0))[0] == pytest.approx(score_from_stats("f1", rows))


def _parallel_store(path: Path, parallel: bool, n: int = 400, n_lang: int = 6) -> Path:
    """Every language answers item i identically (a perfectly parallel test set)."""
    correct = np.random.default_rng(1).random(n) < 0.6
    langs = ["en", *[f"l{k}" for k in range(n_lang)]]
    with Store(path) as store:
        store.set_meta("primary_metric", {"xnli": "accuracy"})
        store.set_meta("parallel", ["xnli"] if parallel else [])
        for inter in ("none", "mnli"):
            for seed in (0, 1):
                rows = {lang: _acc_rows(correct) for lang in langs}
                add_target_run(store, target="xnli", intermediate=inter, seed=seed, metric="accuracy",
                               finals={lang: score_from_stats("accuracy", r) for lang, r in rows.items()},
                               stats=rows)
    return path


def test_parallel_languages_share_one_draw_of_items(tmp_path: Path) -> None:
    """Issue 13 reproducer 2: per-language draws made the mean over languages look far more certain
    than it is when the items are the same in every language."""
    par = target_scores(load(_parallel_store(tmp_path / "p", True)), "xnli", 400, 0)
    ind = target_scores(load(_parallel_store(tmp_path / "i", False)), "xnli", 400, 0)
    sd_one = par.reps[0, 1].std()
    sd_mean_par = par.reps[0, 1:].mean(axis=0).std()
    sd_mean_ind = ind.reps[0, 1:].mean(axis=0).std()
    assert np.allclose(par.reps[0, 1], par.reps[0, 2])  # the same items in every language
    assert sd_mean_par == pytest.approx(sd_one, rel=1e-9)  # the truth for a perfectly parallel set
    assert sd_mean_ind < 0.6 * sd_one  # what independent draws would claim (about sd / sqrt(6))


def test_the_store_meta_or_the_registry_says_which_targets_are_parallel(tmp_path: Path) -> None:
    write_synthetic_experiment(tmp_path / "a", [SyntheticTarget("xnli", "accuracy", {"en": 70, "de": 60}, {"m": 1.0},
                                                                parallel=True, n_examples=50)], seeds=(0,))
    assert target_scores(load(tmp_path / "a"), "xnli", 20, 0).parallel
    with Store(tmp_path / "b") as store:  # an old store without the meta entry: XNLI is parallel by its task
        add_target_run(store, target="xnli", intermediate="none", seed=0, metric="accuracy", finals={"en": 50.0})
        add_target_run(store, target="panx", intermediate="none", seed=0, metric="f1", finals={"en": 50.0})
    data = load(tmp_path / "b")
    assert target_scores(data, "xnli", 20, 0).parallel and not target_scores(data, "panx", 20, 0).parallel


def test_halves_rescore_each_run_on_disjoint_items(tmp_path: Path) -> None:
    write_synthetic_experiment(tmp_path, [SyntheticTarget("panx", "f1", {"en": 70, "de": 60}, {"m": 2.0},
                                                          n_examples=300)], seeds=(0, 1), with_curves=False)
    ts = target_scores(load(tmp_path), "panx", 50, 0)
    a, b = ts.half(0, 50, 0), ts.half(1, 50, 0)
    mask = replication_mask(300)
    for key, rows in ts.stats.items():
        assert a.values[key] == pytest.approx(score_from_stats("f1", rows[mask]))
        assert b.values[key] == pytest.approx(score_from_stats("f1", rows[~mask]))
    assert not np.allclose(a.values, b.values)
