"""All three phases with the real default model on a few dozen real sentences."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from _experiment import experiment_toml
from typer.testing import CliRunner

from xstilts.checkpoint import ENCODER_FILE
from xstilts.cli import app
from xstilts.metrics.stats import score_from_stats
from xstilts.store import Store

TRAIN = """lr = 5e-5
batch_size = 8
max_steps = 4
eval_every = 2
max_length = 64
max_train_examples = 32
max_eval_examples = 12
"""


@pytest.mark.slow
def test_three_phases_real_model(tmp_path: Path, mini_data: Path, default_model: Path) -> None:
    config = tmp_path / "real.toml"
    config.write_text(experiment_toml("default", mini_data, tmp_path / "exp", name="integration", seeds=[3],
                                      train=TRAIN), encoding="utf-8")
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - started < 180

    with Store(tmp_path / "exp", readonly=True) as store:
        runs = {r["run_id"]: r for r in store.runs()}
        assert len(runs) == 5 and all(r["status"] == "done" for r in runs.values())
        (phase2,) = [r for r in runs.values() if r["phase"] == "intermediate"]
        assert (Path(phase2["checkpoint"]) / ENCODER_FILE).is_file()
        for r in runs.values():
            if r["phase"] == "target":
                assert r["parent_run"] == (phase2["run_id"] if r["intermediate"] == "sick" else None)
                assert r["selected_step"] in (2, 4) and r["train_tokens"] > 0
        final = store.scores_frame(kind="final")
        target_final = final[final["phase"] == "target"]
        # every target run has a final score per language for its primary metric
        assert len(target_final) == 4 * 3
        for row in target_final.itertuples():
            stats = store.example_stats(row.run_id, row.task, row.language, row.split, row.metric)
            assert stats.shape == (12, 3)
            assert score_from_stats(row.metric, stats) == pytest.approx(row.value)
            assert 0.0 <= row.value <= 100.0
        curve = store.scores_frame(kind="curve")
        for run_id, sub in curve[curve["phase"] == "target"].groupby("run_id"):
            assert set(sub["step"]) == {2, 4}
            sel = runs[run_id]["selected_step"]
            # selection by the selection half of English dev (English is reported on the other half)
            en = sub[(sub["language"] == "en") & (sub["split"] == "select")].set_index("step")["value"]
            assert en[sel] == en.max()
    assert (tmp_path / "exp" / "results.csv").is_file()
