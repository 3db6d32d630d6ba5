"""Cross-fitted checkpoint-selection analysis: the oracle's max-over-noise bias is gone.

Stores are written through the Store API as phase 3 writes them: English selects on its
selection half and is stored on its report half, a ``select`` curve, and every language's
per-example rows at every step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xstilts.analysis.data import load, load_selection_curves
from xstilts.analysis.selection import select_vs_oracle, selection_summary, selection_table
from xstilts.evaluation.halves import keep_rows, report_mask, selection_mask
from xstilts.metrics.stats import score_from_stats
from xstilts.store import RunResult, Score, Store

METRIC = "accuracy"
TARGET = "xnli"


def _write_run(store: Store, seed: int, levels: Mapping[str, Sequence[float]], n: int, rng: np.random.Generator,
               held_out: bool = True, with_curve_stats: bool = True) -> None:
    """One phase-3 run whose language ``lang`` is right with probability ``levels[lang][j] / 100`` at step j."""
    steps = [100 * (j + 1) for j in range(len(levels["en"]))]
    by_step: dict[int, dict[str, np.ndarray]] = {}
    select: dict[int, float] = {}
    for j, step in enumerate(steps):
        by_step[step] = {}
        for lang, curve in levels.items():
            rows = np.stack([(rng.random(n) < curve[j] / 100.0).astype(float), np.ones(n), np.ones(n)], axis=1)
            if lang == "en" and held_out:
                select[step] = score_from_stats(METRIC, keep_rows(rows, selection_mask(n)))
                rows = keep_rows(rows, report_mask(n))
            by_step[step][lang] = rows
    chooser = select if held_out else {s: score_from_stats(METRIC, by_step[s]["en"]) for s in steps}
    best = max(steps, key=lambda s: (chooser[s], -s))
    result = RunResult(selected_step=best)
    for step, langs in by_step.items():
        for lang, rows in langs.items():
            value = score_from_stats(METRIC, rows)
            result.scores.append(Score(TARGET, lang, "eval", METRIC, value, step, "curve"))
            if with_curve_stats:
                result.curve_stats[(TARGET, lang, "eval", METRIC, step)] = rows
            if step == best:
                result.scores.append(Score(TARGET, lang, "eval", METRIC, value, step, "final"))
                result.example_stats[(TARGET, lang, "eval", METRIC)] = rows
        if held_out:
            result.scores.append(Score(TARGET, "en", "select", METRIC, select[step], step, "curve"))
    run_id = f"none--{TARGET}--s{seed}"
    store.register_run(run_id, "target", "none", TARGET, seed, f"h{seed}", None)
    store.mark_running(run_id)
    store.complete_run(run_id, result, wall_s=1.0)


def _experiment(path: Path, levels: Mapping[str, Sequence[float]], seeds: int, n: int, **kw: bool) -> Path:
    rng = np.random.default_rng(123)
    with Store(path) as store:
        store.conn.execute("PRAGMA synchronous=OFF")
        store.set_meta("primary_metric", {TARGET: METRIC})
        for seed in range(seeds):
            _write_run(store, seed, levels, n, rng, **kw)
    return path


def _analyse(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    data = load(path)
    table = selection_table(data, load_selection_curves(path, data))
    return table, selection_summary(table), data.warnings


def test_pure_noise_gives_no_crossfitted_loss(tmp_path: Path) -> None:
    flat = [60.0] * 8
    levels = {"en": [80.0] * 8, "de": flat, "fr": flat, "sw": flat}
    table, summary, warnings = _analyse(_experiment(tmp_path, levels, seeds=30, n=1000))
    assert set(table["method"]) == {"crossfit"} and not warnings
    row = summary.iloc[0]
    # the in-sample oracle gains about 1.4 sd of a score (1.55 points) by taking a max over 8 steps
    assert row["mean_loss_naive"] > 1.5
    assert abs(row["mean_loss"]) < 0.8  # s.e. of the mean over 90 (run, language) pairs: about 0.25
    zero_shot = table[table["zero_shot"]]
    assert (zero_shot["loss"] < zero_shot["loss_naive"]).all()


def test_a_real_peak_elsewhere_is_measured(tmp_path: Path) -> None:
    en = [80.0] * 10
    en[6] = 86.0  # English peaks at step 700
    de = [60.0] * 10
    de[2] = 70.0  # German really peaks at step 300: English selection costs it 10 points
    levels = {"en": en, "de": de, "fr": [60.0] * 10}
    table, _, _ = _analyse(_experiment(tmp_path, levels, seeds=10, n=2000))
    t = table.set_index("language")
    assert set(t.loc["de", "selected_steps"].split("/")) == {"700"}
    assert t.loc["de", "loss"] == pytest.approx(10.0, abs=1.5)
    assert t.loc["de", "oracle"] == pytest.approx(70.0, abs=1.5)
    assert abs(t.loc["fr", "loss"]) < 1.5


def test_old_stores_fall_back_and_say_so(tmp_path: Path) -> None:
    levels = {"en": [80.0, 82.0, 81.0], "de": [60.0, 61.0, 62.0]}
    path = _experiment(tmp_path, levels, seeds=2, n=200, held_out=False, with_curve_stats=False)
    data = load(path)
    curves = load_selection_curves(path, data)
    assert curves.select.empty and curves.halves.empty
    table = selection_table(data, curves)
    assert set(table["method"]) == {"naive"}
    assert (table["loss"] == table["loss_naive"]).all() and (table["loss"] >= 0).all()
    assert any("not held out" in w for w in data.warnings)
    assert any("per-step per-example rows" in w for w in data.warnings)


def test_crossfit_by_hand() -> None:
    steps = [100, 200, 300]
    curve = pd.DataFrame({"en": [80.0, 85.0, 84.0], "de": [70.0, 68.0, 75.0]}, index=steps)
    half_a = pd.DataFrame({"en": [80.0, 85.0, 84.0], "de": [72.0, 66.0, 70.0]}, index=steps)
    half_b = pd.DataFrame({"en": [80.0, 85.0, 84.0], "de": [68.0, 70.0, 80.0]}, index=steps)
    res = select_vs_oracle(curve, "en", selected_step=300, half_a=half_a, half_b=half_b).set_index("language")
    de = res.loc["de"]
    assert de["selected_step"] == 300 and de["method"] == "crossfit"
    # A picks 100 (scored on B: 68), B picks 300 (scored on A: 70); selected = (70 + 80) / 2
    assert (de["oracle_step_a"], de["oracle_step_b"]) == (100, 300)
    assert de["oracle"] == 69.0 and de["selected"] == 75.0 and de["loss"] == -6.0
    assert de["oracle_naive"] == 75.0 and de["loss_naive"] == 0.0
