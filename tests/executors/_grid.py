"""The executor tests' experiment (a 2 x 2 grid on the tiny model) and what of a store they compare."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from _experiment import experiment_toml
from typer.testing import CliRunner

from xstilts.cli import app


def grid_config(path: Path, model: Path, data: Path, out: Path, cache: Path, seeds: list[int],
                extra: str = "") -> Path:
    path.write_text(experiment_toml(model, data, out, name="grid", seeds=seeds, header=extra,
                                    runtime=f'threads = 1\nprogress = false\ncache_dir = "{cache}"\n'),
                    encoding="utf-8")
    return path


def snapshot(expdir: Path) -> dict[str, object]:
    """What must not depend on the executor: run outcomes, every score, every per-example table."""
    conn = sqlite3.connect(expdir / "results.sqlite")
    try:
        return {
            "runs": sorted(conn.execute(
                "SELECT run_id, status, train_tokens, train_steps, selected_step FROM runs")),
            "scores": sorted(conn.execute(
                "SELECT run_id, task, language, split, metric, step, kind, value FROM scores")),
            "stats": sorted(conn.execute(
                "SELECT run_id, task, language, split, metric, stats FROM example_stats")),
        }
    finally:
        conn.close()


def run_local_then(local_cfg: Path, other_cfg: Path) -> str:
    """``xstilts run`` the one-at-a-time config, then the other executor's; both must succeed.
    Returns the second run's output with rich's line wrapping undone."""
    runner = CliRunner()
    for cfg in (local_cfg, other_cfg):
        result = runner.invoke(app, ["run", str(cfg)])
        assert result.exit_code == 0, result.output
    return " ".join(result.output.split())
