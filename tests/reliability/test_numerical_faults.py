"""Diverged training and a full disk stop the run with one line and a ``failed`` status, never a
silent garbage checkpoint, a traceback, or a half-written file in place of a good one.

Faults are injected through ``XSTILTS_FAULT`` (see :mod:`xstilts.faults`) into the CLI running in
this process: a NaN loss, a finite loss whose gradients are NaN, and ``OSError(ENOSPC)`` at each
place xstilts writes (tokenised cache, checkpoint, store commit).
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import pytest
import safetensors.torch
from _reliability import checkpoint_files, stale_temp_files, write_experiment
from torch import nn
from typer.testing import CliRunner

from xstilts import checkpoint, faults
from xstilts.checkpoint import ENCODER_FILE, save_encoder
from xstilts.cli import app


@pytest.fixture()
def experiment(tiny_model: Path, mini_data: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Phase 2 on SICK, then XNLI: two runs, the first one writes a checkpoint."""
    out = tmp_path / "exp"
    cfg = write_experiment(tmp_path / "exp.toml", tiny_model, mini_data, out, settings='["sick"]',
                           tasks='["xnli"]', languages='["en"]')
    return cfg, out


def _run(cfg: Path, monkeypatch: pytest.MonkeyPatch, fault: str | None) -> tuple[int, str]:
    if fault:
        monkeypatch.setenv(faults.ENV, fault)
    else:
        monkeypatch.delenv(faults.ENV, raising=False)
    faults.reset()
    result = CliRunner().invoke(app, ["run", str(cfg)])
    return result.exit_code, result.output


def _error_line(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert "Traceback" not in output
    return errors[0]


def _runs(out: Path) -> list[tuple[str, str, str | None, int]]:
    with sqlite3.connect(out / "results.sqlite") as con:
        return con.execute("SELECT run_id, status, error, (SELECT count(*) FROM scores s WHERE"
                           " s.run_id = r.run_id) FROM runs r ORDER BY rowid").fetchall()


@pytest.mark.parametrize("fault, message", [
    ("loss:2:nan", "loss became nan at step 2"),
    ("loss:3:nangrad", "gradient norm became nan at step 3"),
])
def test_divergence_fails_the_run_with_one_line_and_no_checkpoint(
        experiment: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, fault: str, message: str) -> None:
    cfg, out = experiment
    code, output = _run(cfg, monkeypatch, fault)
    assert code == 2
    assert message in _error_line(output)
    (phase2, status, error, n_scores), (target, t_status, _, _) = _runs(out)
    assert phase2.startswith("int-sick") and status == "failed" and message in error and n_scores == 0
    assert t_status == "pending"  # nothing was built on the diverged run
    assert checkpoint_files(out) == []  # no garbage weights for a target to start from

    code, output = _run(cfg, monkeypatch, None)  # the failed run is retried, the study completes
    assert code == 0, output
    assert [r[1] for r in _runs(out)] == ["done", "done"]


@pytest.mark.parametrize("point", ["cache_write", "checkpoint_write", "store_commit"])
def test_disk_full_is_one_line_and_a_failed_run(
        experiment: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, point: str) -> None:
    cfg, out = experiment
    code, output = _run(cfg, monkeypatch, f"{point}:1:enospc")
    assert code == 2
    line = _error_line(output)
    assert os.strerror(errno.ENOSPC) in line and str(out) in line  # names what it was writing
    (phase2, status, error, n_scores), _ = _runs(out)
    assert status == "failed" and os.strerror(errno.ENOSPC) in error
    assert n_scores == 0  # the store commit rolled back as a whole
    assert not (out / "checkpoints" / phase2 / ENCODER_FILE).exists() or point == "store_commit"
    assert stale_temp_files(out) == []  # the failed write removed its temp file


def test_disk_full_mid_checkpoint_keeps_the_previous_one(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = nn.Linear(64, 64)
    target = save_encoder(encoder, tmp_path)
    before = target.read_bytes()
    real_write = checkpoint.write_safetensors

    def half_then_full_disk(state: dict, path: Path, metadata: dict | None = None) -> None:
        real_write(state, path, metadata)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])  # the bytes that made it to disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(checkpoint, "write_safetensors", half_then_full_disk)
    nn.init.normal_(encoder.weight)  # new weights whose save runs out of disk
    with pytest.raises(OSError) as info:
        save_encoder(encoder, tmp_path)
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == before  # the previous checkpoint, intact and loadable
    assert set(safetensors.torch.load_file(str(target))) == {"weight", "bias"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [ENCODER_FILE]  # no half file left
