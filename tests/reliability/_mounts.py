"""Small real filesystems for tests: a tiny tmpfs (a disk that fills up), a read-only one.

Mounting needs root (or CAP_SYS_ADMIN); where the platform refuses, the test is skipped and says
why. Every mount is undone when its ``with`` block ends, also when the test fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False, timeout=60)


@contextmanager
def tmpfs(where: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of ``size`` (``mount`` syntax: ``12m``) at ``where``; skips the test if it cannot mount."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command on this platform")
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0755" + (",ro" if read_only else "")
    done = _mount("-t", "tmpfs", "-o", options, "tmpfs", str(where))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)  # still busy: detach


def resize(where: Path, size: str) -> None:
    """Grow (or shrink) a mounted tmpfs in place: the files on it stay."""
    done = _mount("-o", f"remount,size={size}", str(where))
    assert done.returncode == 0, done.stderr


def fill(where: Path, name: str = "ballast") -> Path:
    """Write zeros to ``where/name`` until the filesystem is full; returns the file (delete it to free)."""
    path = where / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in (1 << 20, 4096, 1):
            block = b"\0" * chunk
            try:
                while os.write(fd, block) > 0:
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)
    return path


@contextmanager
def unwritable_dir(where: Path) -> Iterator[Path]:
    """A directory this process cannot write into: permissions for a normal user, a read-only tmpfs
    for root (root ignores permission bits, not a read-only mount)."""
    if os.geteuid() != 0:
        where.mkdir(parents=True, exist_ok=True)
        where.chmod(0o555)
        try:
            yield where
        finally:
            where.chmod(0o755)
        return
    with tmpfs(where, "1m", read_only=True) as mounted:
        yield mounted
