"""``[target.selection] average = "all"``: a real (tiny) experiment stores the averaged model's rows
beside the selected checkpoint's, and ``xstilts analyze`` writes the four-strategy table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from _experiment import experiment_toml
from typer.testing import CliRunner

from xstilts.cli import app
from xstilts.config import load_config
from xstilts.plan import make_plan
from xstilts.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")


def test_average_rows_are_stored_and_analyze_compares_four_strategies(tmp_path: Path, mini_data: Path,
                                                                       tiny_model: Path) -> None:
    base = experiment_toml(tiny_model, mini_data, tmp_path / "exp", settings=["none"], tasks=["panx", "xnli"])
    config = tmp_path / "avg.toml"
    config.write_text(base + '[target.selection]\naverage = "all"\nk_shot = [2]\n', encoding="utf-8")
    plain = tmp_path / "plain.toml"
    plain.write_text(base, encoding="utf-8")
    with_avg, without = make_plan(load_config(config)), make_plan(load_config(plain))
    assert [r.run_id for r in with_avg] != [r.run_id for r in without]  # averaging is hashed when on
    assert load_config(config).target.selection.strategies == ["english", "k-shot", "oracle", "average"]

    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    exp = tmp_path / "exp"
    with Store(exp, readonly=True) as store:
        scores = store.scores_frame()
        runs = {r["run_id"]: r for r in store.runs()}
        stats = list(store.iter_example_stats())
    target = scores[scores["phase"] == "target"]
    for run_id, rows in target.groupby("run_id"):
        task = rows["task"].iloc[0]
        avg, final = rows[rows["kind"] == "average-all"], rows[rows["kind"] == "final"]
        assert set(avg["language"]) == set(final["language"]) == {"en", "de", "sw"}
        assert set(avg["metric"]) == set(final["metric"])
        assert set(avg["step"]) == {runs[run_id]["train_steps"]} == {4}
        # two evaluations (steps 2 and 4) were averaged
        assert runs[run_id]["extra"] and '"steps": [2, 4]' in runs[run_id]["extra"], task
        assert {(s["language"], s["split"]) for s in stats if s["run_id"] == run_id and s["split"] == "average-all"} \
            == {("en", "average-all"), ("de", "average-all"), ("sw", "average-all")}

    result = CliRunner().invoke(app, ["analyze", str(exp), "--n-boot", "20"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(exp / "analysis" / "strategies.csv")
    assert set(table["strategy"]) == {"english", "k-shot-2", "average-all", "oracle"}
    assert set(table["target"]) == {"panx", "xnli"}
    # every strategy of a language is scored on the same items
    assert (table.groupby(["target", "language"])["n_scored"].nunique() == 1).all()
    summary = pd.read_csv(exp / "analysis" / "strategy_summary.csv")
    assert set(summary["strategy"]) == {"english", "k-shot-2", "average-all", "oracle"}
