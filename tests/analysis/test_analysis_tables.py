"""analyze() on stores whose tables are known by hand, and on the awkward cases of real stores."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from xstilts.analysis import analyze
from xstilts.analysis.synthetic import SyntheticTarget, add_target_run, write_synthetic_experiment
from xstilts.store import Store

SQ2 = math.sqrt(2.0)
BASE = {0: {"en": 80, "de": 70, "fr": 60, "sw": 40}, 1: {"en": 82, "de": 72, "fr": 62, "sw": 42}}
MNLI = {0: {"en": 84, "de": 72, "fr": 66, "sw": 40}, 1: {"en": 86, "de": 74, "fr": 64, "sw": 44}}


@pytest.fixture
def hand_store(tmp_path: Path) -> Path:
    """xnli: two seeds per arm, no example stats, no meta (so the defaults apply);
    panx: an intermediate setting but no baseline."""
    with Store(tmp_path) as store:
        for inter, table in (("none", BASE), ("mnli", MNLI)):
            for seed, finals in table.items():
                curves = None
                if inter == "none" and seed == 0:
                    curves = {100: {"en": 80, "de": 65, "fr": 61}, 200: {"en": 83, "de": 70, "fr": 58}}
                add_target_run(
                    store,
                    target="xnli",
                    intermediate=inter,
                    seed=seed,
                    metric="accuracy",
                    finals=finals,
                    curves=curves,
                )
        # a second metric that must be ignored, and a run that never finished
        add_target_run(
            store,
            target="xnli",
            intermediate="none",
            seed=9,
            metric="macro_f1",
            finals={"en": 1.0, "de": 1.0},
            run_id="other-metric",
        )
        store.register_run("pending", "target", "mnli", "xnli", 5, "h", None)
        add_target_run(
            store, target="panx", intermediate="mnli", seed=0, metric="f1", finals={"en": 80.0, "de": 70.0}
        )
    return tmp_path


def test_hand_store_tables(hand_store: Path) -> None:
    a = analyze(hand_store, n_boot=400, k=2)
    assert a.info["metrics"] == {"panx": "f1", "xnli": "accuracy"}
    assert a.info["chance"]["xnli"] == pytest.approx(100 / 3)

    lang = a.languages.set_index(["target", "intermediate", "language"])
    assert lang.loc[("xnli", "none", "de"), "mean"] == 71.0
    assert lang.loc[("xnli", "none", "de"), "seed_std"] == pytest.approx(SQ2)
    assert lang.loc[("xnli", "mnli", "sw"), "seed_std"] == pytest.approx(2 * SQ2)
    assert lang.loc[("xnli", "mnli", "fr"), "delta"] == 4.0
    assert math.isnan(lang.loc[("xnli", "none", "fr"), "delta"])

    rob = a.robustness.set_index(["target", "intermediate"])
    base, mnli = rob.loc[("xnli", "none")], rob.loc[("xnli", "mnli")]
    assert base["transfer_gap"] == pytest.approx(81 - (71 + 61 + 41) / 3)
    assert mnli["transfer_gap"] == pytest.approx(85 - (73 + 65 + 42) / 3)
    assert base["worst_language"] == "sw" and base["worst_score"] == 41.0
    assert base["worst_k_mean"] == pytest.approx((41 + 61) / 2)  # k=2
    assert mnli["avg_seed_std"] == pytest.approx(4 * SQ2 / 3)
    assert mnli["mean_delta"] == pytest.approx(7 / 3)
    assert mnli["delta_std"] == pytest.approx(np.std([2.0, 4.0, 1.0], ddof=1))
    assert mnli["spearman_rho"] == pytest.approx(0.5)  # ranks (2,3,1) vs (3,2,1)
    assert math.isnan(base["mean_delta"]) and math.isnan(base["spearman_rho"])

    eff = a.effects.set_index("language")
    assert list(eff.index) == ["en", "de", "fr", "sw"]
    assert set(eff["method"]) == {"seeds"}  # no per-example stats in this store
    # de: intermediate seeds 72, 74 vs baseline 70, 72: delta 2, pooled seed variance 2, se sqrt(2 * 2 / 2)
    assert eff.loc["de", "delta"] == 2.0
    assert eff.loc["de", "se"] == pytest.approx(math.sqrt(2.0)) and eff.loc["de", "df"] == 2
    half = 4.302652729911275 * math.sqrt(2.0)  # t(0.975, 2)
    assert eff.loc["de", "ci_lo"] == pytest.approx(2 - half) and eff.loc["de", "ci_hi"] == pytest.approx(2 + half)
    meas = a.measures.set_index(["target", "intermediate", "measure"])
    gap = meas.loc[("xnli", "mnli", "transfer_gap")]
    assert gap["value"] == pytest.approx(85 - (73 + 65 + 42) / 3)
    assert gap["baseline_value"] == pytest.approx(81 - (71 + 61 + 41) / 3)
    ratio = meas.loc[("xnli", "mnli", "transfer_ratio")]
    c = 100 / 3
    per_run = [100 * ((72 + 66 + 40) / 3 - c) / (84 - c), 100 * ((74 + 64 + 44) / 3 - c) / (86 - c)]
    assert ratio["value"] == pytest.approx(np.mean(per_run)) and ratio["primary"]
    assert meas.loc[("xnli", "mnli", "english"), "delta"] == 4.0
    summ = a.effect_summary.set_index(["target", "intermediate"]).loc[("xnli", "mnli")]
    assert summ["n_languages"] == 3 and summ["worst_language"] == "sw"
    assert summ["improved"] + summ["hurt"] + summ["not_significant"] + summ["untested"] == 3

    sel = a.selection.set_index("language")
    assert sel.loc["de", "selected_steps"] == "200" and sel.loc["fr", "loss"] == 3.0
    assert sel.loc["de", "loss"] == 0.0

    # panx has no baseline: robustness yes, effects no, and the text says the question is open
    assert "panx" in set(a.robustness["target"]) and "panx" not in set(a.effects["target"])
    assert any("panx" in w and "baseline" in w for w in a.warnings)
    assert "cannot answer" in a.summary


def test_one_seed_uses_examples_only_and_seed_std_is_missing(tmp_path: Path) -> None:
    write_synthetic_experiment(
        tmp_path,
        [
            SyntheticTarget(
                "xnli",
                "accuracy",
                {"en": 80, "de": 70, "fr": 65},
                {"mnli": 3.0},
                n_examples=200,
                chance=100 / 3,
            )
        ],
        seeds=(0,),
    )
    a = analyze(tmp_path, n_boot=200)
    assert set(a.effects["method"]) == {"items"}  # an interval for the test items only ...
    assert a.effects["ci_lo"].notna().all() and (a.effects["ci_lo"] < a.effects["ci_hi"]).all()
    assert a.effects["p"].isna().all() and set(a.effects["verdict"]) == {"n/a"}  # ... and no verdict
    assert a.languages["seed_std"].isna().all() and a.robustness["avg_seed_std"].isna().all()
    assert "single seed" in a.summary


def test_missing_example_stats_fall_back_to_seeds(tmp_path: Path) -> None:
    write_synthetic_experiment(
        tmp_path,
        [SyntheticTarget("panx", "f1", {"en": 80, "de": 70}, {"mnli": 3.0})],
        seeds=(0, 1, 2),
        with_stats=False,
        with_curves=False,
    )
    a = analyze(tmp_path, n_boot=200)
    assert set(a.effects["method"]) == {"seeds"} and a.effects["n_examples"].isna().all()
    assert a.replication.empty and "not counted" in a.summary
    assert a.selection.empty and a.selection_summary.empty


def test_one_seed_and_no_stats_gives_no_interval(tmp_path: Path) -> None:
    write_synthetic_experiment(
        tmp_path,
        [SyntheticTarget("panx", "f1", {"en": 80, "de": 70, "fr": 60}, {"mnli": 3.0})],
        seeds=(0,),
        with_stats=False,
    )
    a = analyze(tmp_path, n_boot=100)
    assert set(a.effects["method"]) == {"none"}
    assert a.effects["ci_lo"].isna().all() and set(a.effects["verdict"]) == {"n/a"}
    assert a.effects["delta"].notna().all()


def test_analysis_is_deterministic_and_seed_dependent(tmp_path: Path) -> None:
    write_synthetic_experiment(
        tmp_path,
        [SyntheticTarget("panx", "f1", {"en": 80, "de": 70, "sw": 50}, {"mnli": 2.0}, n_examples=150)],
        seeds=(0, 1),
    )
    a, b, c = (
        analyze(tmp_path, n_boot=150),
        analyze(tmp_path, n_boot=150),
        analyze(tmp_path, n_boot=150, seed=1),
    )
    assert a.effects.equals(b.effects) and a.summary == b.summary
    assert not np.allclose(a.effects["ci_lo"], c.effects["ci_lo"])


def test_bootstrap_ci_of_the_store_agrees_with_the_scores(tmp_path: Path) -> None:
    """The point estimate comes from the final scores and must sit inside its own interval."""
    write_synthetic_experiment(
        tmp_path,
        [SyntheticTarget("panx", "f1", {"en": 80, "de": 70, "sw": 50}, {"mnli": 4.0}, n_examples=200)],
        seeds=(0, 1, 2),
    )
    e = analyze(tmp_path, n_boot=300).effects
    assert ((e["ci_lo"] <= e["delta"]) & (e["delta"] <= e["ci_hi"])).all()
    assert set(e["method"]) == {"seeds+items"} and (e["n_examples"] == 200).all()
