"""Helpers of the reliability suite: the small real experiment, running the CLI, reading a store.

The experiment is the shape of a real study (a baseline and one intermediate setting, two
targets, three languages, every phase, cache, checkpoint and store write) on the tiny model
and the mini data, so a complete run takes seconds.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from _experiment import experiment_toml as _experiment_toml

from xstilts.faults import FOREIGN_TMP

# one thread: concurrent runs stay off each other's cores, and a loaded machine does not make
# torch's threads spin against each other (in-process runs restore the count: conftest.py)
RUNTIME = "progress = false\nthreads = 1\n"


def experiment_toml(model: Path, data_dir: Path, out_dir: Path, *, seed: int = 1, runtime: str = RUNTIME,
                    **kwargs: Any) -> str:
    """The config text of the reliability experiment (``extra`` is appended: task options)."""
    return _experiment_toml(model, data_dir, out_dir, name="reliability", seeds=[seed], runtime=runtime,
                            **kwargs)


def write_experiment(path: Path, *args: Any, **kwargs: Any) -> Path:
    path.write_text(experiment_toml(*args, **kwargs), encoding="utf-8")
    return path


def cli_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "xstilts.cli", "run", str(config)]


def cli_env(fault: str | None = None) -> dict[str, str]:
    """The environment of a CLI subprocess: offline, unbuffered, and only the fault we ask for."""
    env = {k: v for k, v in os.environ.items() if k != "XSTILTS_FAULT"}
    env.update(PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    if fault:
        env["XSTILTS_FAULT"] = fault
    return env


def run_cli(config: Path, fault: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(config), env=cli_env(fault), capture_output=True, text=True,
                          timeout=timeout, check=False)


def _connect(out_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{out_dir / 'results.sqlite'}?mode=ro", uri=True)


def store_snapshot(out_dir: Path) -> dict[str, Any]:
    """Everything a finished experiment's result is: runs, every score, per-example rows, checkpoints.

    Left out: what legitimately differs between two executions of the same run (timestamps,
    wall time, attempts, throughput in ``extra``) and absolute paths.
    """
    with _connect(out_dir) as con:
        runs = con.execute(
            "SELECT run_id, phase, intermediate, target, seed, config_hash, parent_run, status, train_tokens,"
            " train_steps, selected_step, checkpoint IS NOT NULL, error FROM runs ORDER BY run_id").fetchall()
        scores = con.execute(
            "SELECT run_id, task, language, split, metric, value, step, kind FROM scores"
            " ORDER BY run_id, task, language, split, metric, step, kind").fetchall()
        stats = con.execute(
            "SELECT run_id, task, language, split, metric, stats FROM example_stats"
            " ORDER BY run_id, task, language, split, metric").fetchall()
        plan = con.execute("SELECT value FROM meta WHERE key='plan'").fetchone()
    checkpoints = {
        p.relative_to(out_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((out_dir / "checkpoints").rglob("*")) if p.is_file()
    }
    return {"runs": runs, "scores": scores, "example_stats": stats, "plan": plan, "checkpoints": checkpoints}


def run_status(out_dir: Path) -> dict[str, str]:
    with _connect(out_dir) as con:
        return dict(con.execute("SELECT run_id, status FROM runs"))


def store_invariants(out_dir: Path) -> None:
    """What must hold after any crash: an intact database, and results only for finished runs."""
    with _connect(out_dir) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = con.execute(
            "SELECT r.run_id, r.status, (SELECT count(*) FROM scores s WHERE s.run_id = r.run_id AND"
            " s.kind = 'final'), (SELECT count(*) FROM scores s WHERE s.run_id = r.run_id),"
            " (SELECT count(*) FROM example_stats e WHERE e.run_id = r.run_id) FROM runs r").fetchall()
    for run_id, status, n_final, n_scores, n_stats in rows:
        if status == "done":
            assert n_final > 0 and n_stats > 0, f"{run_id} is done but has no final scores"
        else:
            assert n_scores == 0 and n_stats == 0, f"{run_id} is {status} but has {n_scores} score rows"


def stale_temp_files(root: Path) -> list[Path]:
    """xstilts' temp files, and tempfile-style ``.tmpXXXXXX`` ones (what safetensors' own writer leaves)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and (p.name.endswith(".tmp") or FOREIGN_TMP.fullmatch(p.name)))


def done_rows(out_dir: Path) -> int:
    """Runs marked done (0 when there is no store at all)."""
    if not (out_dir / "results.sqlite").is_file():
        return 0
    with _connect(out_dir) as con:
        return con.execute("SELECT count(*) FROM runs WHERE status='done'").fetchone()[0]


def checkpoint_files(out_dir: Path) -> list[Path]:
    return sorted(p for p in (out_dir / "checkpoints").rglob("*") if p.is_file()) \
        if (out_dir / "checkpoints").is_dir() else []


def one_error_line(args: list[str]) -> str:
    """Run the CLI in-process; it must exit 2 with exactly one ``error:`` line and no traceback.
    Returns that line."""
    from typer.testing import CliRunner

    from xstilts.cli import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit), result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]
