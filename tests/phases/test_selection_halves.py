"""Phase 3 on the tiny model: English picks the checkpoint on one half and is reported on the other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _experiment import experiment_toml
from typer.testing import CliRunner

from xstilts.cli import app
from xstilts.evaluation.halves import report_mask, selection_mask
from xstilts.metrics.stats import score_from_stats
from xstilts.store import Store
from xstilts.tasks import get_task

LANGUAGES = ("en", "de", "sw")


def test_phase3_reports_english_on_the_report_half(tmp_path: Path, mini_data: Path, tiny_model: Path) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(experiment_toml(tiny_model, mini_data, tmp_path / "exp", settings=["none"],
                                      languages=LANGUAGES), encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output

    with Store(tmp_path / "exp", readonly=True) as store:
        runs = [r for r in store.runs() if r["phase"] == "target"]
        assert {r["target"] for r in runs} == {"panx", "xnli"}
        scores = store.scores_frame()
        curve_stats = {(r["run_id"], r["language"], r["split"], r["metric"], r["step"]): r["stats"]
                       for r in store.iter_curve_stats()}
        for run in runs:
            run_id, target, step = run["run_id"], run["target"], run["selected_step"]
            metric = get_task(target).metric
            own = scores[scores["run_id"] == run_id]

            # the English final is the report half: its rows score to it exactly, the selection half is zero
            en_final = own[(own["kind"] == "final") & (own["language"] == "en")]
            assert len(en_final) >= 1
            for row in en_final.itertuples():
                stats = store.example_stats(run_id, target, "en", "eval", row.metric)
                assert score_from_stats(row.metric, stats) == row.value
                chosen = selection_mask(len(stats))
                assert chosen.any() and (~chosen).any()
                assert not stats[chosen].any()
                assert np.array_equal(report_mask(len(stats)), ~chosen)

            # the selection-half curve exists and reproduces the selected step (ties: earliest)
            select = own[(own["kind"] == "curve") & (own["split"] == "select")]
            assert set(select["language"]) == {"en"} and set(select["metric"]) == {metric}
            values = select.set_index("step")["value"].sort_index()
            assert set(values.index) == {2, 4}
            assert step == int(values.idxmax())

            # per-step per-example rows of the primary metric, every language and step
            for lang in LANGUAGES:
                for s in (2, 4):
                    rows = curve_stats[(run_id, lang, "eval", metric, s)]
                    assert rows.shape[1] == 3
                    stored = own[(own["kind"] == "curve") & (own["split"] == "eval") & (own["language"] == lang)
                                 & (own["metric"] == metric) & (own["step"] == s)]["value"]
                    assert score_from_stats(metric, rows) == pytest.approx(float(stored.iloc[0]))
                    if lang == "en":
                        assert not rows[selection_mask(len(rows))].any()
                final = store.example_stats(run_id, target, lang, "eval", metric)
                assert np.array_equal(curve_stats[(run_id, lang, "eval", metric, step)], final)
