"""A real full disk: the experiment's output directory on a tiny tmpfs, not an injected exception.

The tiny model's phase-2 checkpoint is 32 MB; on a 12 MB filesystem its write fails with ENOSPC
after the baseline run has finished. Then the store, then the report, run out of space. Each time
xstilts must say so in one line naming the file and the reason, exit 2, keep what was done, and
leave no temporary file; given space again, the same command finishes the study.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from _mounts import fill, resize, tmpfs
from _reliability import one_error_line, run_status, stale_temp_files, store_invariants, write_experiment
from typer.testing import CliRunner

from xstilts.cli import app

NO_SPACE = os.strerror(errno.ENOSPC)


def _fails_for_lack_of_space(args: list[str]) -> str:
    """Run the CLI: exit 2, one ``error:`` line saying no space is left, no traceback. Returns the line."""
    line = one_error_line(args)
    assert NO_SPACE in line, line
    return line


def test_a_real_full_disk_is_one_line_and_keeps_what_was_done(tmp_path: Path, mini_data: Path, tiny_model: Path) -> None:
    with tmpfs(tmp_path / "fs", "12m") as fs:
        out = fs / "exp"
        config = write_experiment(
            tmp_path / "exp.toml",
            tiny_model,
            mini_data,
            out,
            settings='["none", "sick"]',
            tasks='["xnli"]',
            languages='["en", "de"]',
        )
        baseline, phase2, target = (r.split()[0] for r in _plan(config))

        # 1. the phase-2 checkpoint (32 MB) does not fit; the baseline run before it is kept
        line = _fails_for_lack_of_space(["run", str(config)])
        assert f"{out / 'checkpoints' / phase2 / 'encoder.safetensors'}: {NO_SPACE}" in line, line
        store_invariants(out)
        assert run_status(out) == {baseline: "done", phase2: "failed", target: "pending"}
        assert stale_temp_files(fs) == []
        assert not any((out / "checkpoints").rglob("*.safetensors"))

        # 2. the disk is full to the last byte: the store cannot record that the run starts again
        ballast = fill(fs)
        line = _fails_for_lack_of_space(["run", str(config)])
        assert f"{out / 'results.sqlite'}: {NO_SPACE}" in line, line
        store_invariants(out)
        assert run_status(out) == {baseline: "done", phase2: "failed", target: "pending"}
        assert stale_temp_files(fs) == []

        # 3. space again: the same command finishes the study
        ballast.unlink()
        resize(fs, "96m")
        result = CliRunner().invoke(app, ["run", str(config)])
        assert result.exit_code == 0, result.output
        assert set(run_status(out).values()) == {"done"}

        # 4. the report and the analysis tables do not fit; the store they read is untouched
        fill(fs)
        line = _fails_for_lack_of_space(["report", str(out), "--n-boot", "10"])
        assert f"{out / 'report'}/" in line and f": {NO_SPACE}" in line, line
        line = _fails_for_lack_of_space(["analyze", str(out), "--n-boot", "10"])
        assert f"{out / 'analysis'}/" in line and f": {NO_SPACE}" in line, line
        store_invariants(out)
        assert set(run_status(out).values()) == {"done"}
        assert stale_temp_files(fs) == []


def _plan(config: Path) -> list[str]:
    result = CliRunner().invoke(app, ["plan", str(config)])
    assert result.exit_code == 0, result.output
    # the run ids (stdout); the effective-hyperparameter table goes to stderr, which the runner mixes in
    return [line for line in result.output.splitlines() if line.startswith(("int-", "tgt-"))]
