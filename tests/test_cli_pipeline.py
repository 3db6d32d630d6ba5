"""End to end through the CLI on the tiny model: the plan runs, the store fills, resume skips."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from xstilts.cli import app
from xstilts.store import Store


def test_run_fills_store_and_resume_skips(tiny_config: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["run", str(tiny_config)])
    assert first.exit_code == 0, first.output
    with Store(tmp_path / "exp", readonly=True) as store:
        runs = store.runs()
        assert len(runs) == 5  # 1 phase-2 run (sick) + 2 settings x 2 targets
        assert all(r["status"] == "done" for r in runs)
        final = store.scores_frame(kind="final")
        targets = final[final["phase"] == "target"]
        assert set(targets["language"]) == {"en", "de", "sw"}
        assert set(targets["intermediate"]) == {"none", "sick"}
        curve = store.scores_frame(kind="curve")
        assert set(curve[curve["phase"] == "target"]["step"]) == {2, 4}
    second = runner.invoke(app, ["run", str(tiny_config)])
    assert second.exit_code == 0, second.output
    assert "0 run(s) done now, 5 already done" in second.output
