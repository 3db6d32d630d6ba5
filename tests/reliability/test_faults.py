"""The fault hooks fire exactly where and when asked, and atomic writes never expose half a file."""

from __future__ import annotations

import errno
import io
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from xstilts import faults
from xstilts.errors import ConfigError


def test_parse_spec_reads_points_counts_and_actions() -> None:
    assert faults.parse_spec("checkpoint_write:2, loss:3:nan") == {
        "checkpoint_write": (2, "kill"), "loss": (3, "nan")}


@pytest.mark.parametrize("spec, fragment", [
    ("checkpoint:1", "unknown fault point 'checkpoint'"),
    ("train_step:0", "n >= 1"),
    ("train_step:x", "point:n[:action]"),
    ("train_step:1:explode", "unknown action 'explode'"),
])
def test_a_mistyped_spec_is_an_error_not_a_silent_no_op(spec: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[")):
        faults.parse_spec(spec)


def test_fault_fires_on_the_nth_visit_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(faults.ENV, "cache_write:3:enospc")
    faults.fault_point("cache_write")
    faults.fault_point("train_step")  # other points are not counted against it
    faults.fault_point("cache_write")
    with pytest.raises(OSError) as info:
        faults.fault_point("cache_write", tmp_path / "x.tmp")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "x.tmp")
    faults.fault_point("cache_write")  # once only


def test_unset_hooks_do_nothing() -> None:
    x = torch.ones(2, requires_grad=True)
    assert faults.poison("loss", x) is x
    faults.fault_point("checkpoint_write")


def test_poison_nan_and_nan_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(faults.ENV, "loss:1:nan")
    assert torch.isnan(faults.poison("loss", torch.tensor(2.0)))
    monkeypatch.setenv(faults.ENV, "loss:1:nangrad")
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = faults.poison("loss", (x * 3).sum())
    assert torch.isfinite(y) and float(y.detach()) == 9.0  # the loss looks fine ...
    y.backward()
    assert torch.isnan(x.grad).all()  # ... its gradient is not


def test_kill_is_a_real_sigkill() -> None:
    code = ("from xstilts.faults import fault_point\n"
            "fault_point('train_step')\nfault_point('train_step')\nprint('alive')")
    env = {**os.environ, faults.ENV: "train_step:2"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL and "alive" not in proc.stdout


def test_atomic_path_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "encoder.safetensors"
    with faults.atomic_path(target) as tmp:
        tmp.write_bytes(b"old")
    assert target.read_bytes() == b"old"
    with pytest.raises(RuntimeError), faults.atomic_path(target) as tmp:
        tmp.write_bytes(b"half of the ne")
        raise RuntimeError("died mid-write")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["encoder.safetensors"]


def test_atomic_path_fault_after_write_before_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "results.csv"
    target.write_text("old")
    monkeypatch.setenv(faults.ENV, "checkpoint_write:1:enospc")
    with pytest.raises(OSError), faults.atomic_path(target, fault="checkpoint_write") as tmp:
        tmp.write_text("new, complete")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_stale_temp_files_of_dead_writers_are_swept(tmp_path: Path) -> None:
    target = tmp_path / "encoder.safetensors"
    host = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".encoder.safetensors.{host}.{dead_pid}.tmp"
    live = tmp_path / f".encoder.safetensors.{host}.{os.getppid()}.tmp"  # a writer still running
    elsewhere = tmp_path / f".encoder.safetensors.other-host.{dead_pid}.tmp"  # cannot tell: keep
    other_file = tmp_path / f".cache.pkl.{host}.{dead_pid}.tmp"  # another target's: its writer sweeps it
    for p in (stale, live, elsewhere, other_file):
        p.write_bytes(b"x" * 10)
    with faults.atomic_path(target) as tmp:
        tmp.write_bytes(b"weights")
    assert not stale.exists()
    assert live.exists() and elsewhere.exists() and other_file.exists()
    assert target.read_bytes() == b"weights"


def test_sweep_treats_brackets_in_names_literally(tmp_path: Path) -> None:
    target = tmp_path / "results[seed 1].csv"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    stale = tmp_path / f".{target.name}.{socket.gethostname()}.{int(dead.stdout)}.tmp"
    stale.write_text("x")
    with faults.atomic_path(target) as tmp:
        tmp.write_text("a,b\n")
    assert not stale.exists() and target.read_text() == "a,b\n"


def test_a_write_error_without_a_file_name_is_given_the_target(tmp_path: Path) -> None:
    """``write(2)`` on a full disk raises ``[Errno 28]`` with no file name; the one line must name one."""
    from xstilts.report.files import write_bytes_atomic

    class FullDisk(io.BytesIO):
        def write(self, data: bytes) -> int:  # noqa: ARG002 - what a full disk does with any data
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    target = tmp_path / "encoder.safetensors"
    with pytest.raises(OSError) as info, faults.atomic_path(target) as tmp:
        FullDisk().write(tmp.name.encode())
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(target))
    assert list(tmp_path.iterdir()) == []

    # the report's writer goes through atomic_path too: a failing write of its temp file names the report
    report = tmp_path / "report" / "report.html"

    def full_write_bytes(self: Path, data: bytes) -> int:  # noqa: ARG001 - a full disk refuses any data
        self.touch()  # the temp file exists, as after a partial write
        return FullDisk().write(data)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "write_bytes", full_write_bytes)
        with pytest.raises(OSError) as info:
            write_bytes_atomic(report, b"<html>")
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(report))
    assert list(report.parent.iterdir()) == []
