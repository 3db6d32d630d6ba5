"""Crash safety: atomic file writes, and fault injection that proves them.

Experiments run for days on shared machines, where a process can die at any instruction (OOM
killer, pre-emption, a full disk). Two tools live here:

``atomic_path``
    Every file xstilts writes that a later run reads (checkpoints, tokenised caches, the results
    CSV) is written to a temporary file beside its target and renamed over it only when complete,
    so a reader sees the old file or the new one, never half of one. The temporary name carries
    host and pid: a writer killed mid-write leaves its file behind, and the next writer of the
    same target removes the ones whose process is gone (a killed checkpoint write would otherwise
    leak a model-sized file per crash).

``fault_point`` / ``poison``
    Named points in the pipeline where the environment variable ``XSTILTS_FAULT`` can make the
    process fail on purpose, so tests can kill a real run exactly during a checkpoint write or a
    store commit instead of hoping a random signal lands there. The variable holds
    comma-separated ``point:n[:action]`` items: on the ``n``-th time this process reaches
    ``point`` it performs ``action`` (once):

    ``kill``    SIGKILL itself: the harshest crash, no ``finally`` or ``atexit`` runs (default)
    ``enospc``  raise ``OSError(ENOSPC)``, as a full disk does
    ``nan``     (:func:`poison` points) make the value NaN
    ``nangrad`` (:func:`poison` points) keep the value but make its gradient NaN

    Points: ``cache_write`` (featurize, after the temporary cache file is written, before the
    rename), ``train_step`` (after an optimizer update), ``loss`` (the loss of a training step,
    a :func:`poison` point), ``evaluate`` (before each evaluation set is scored),
    ``checkpoint_write`` (after the temporary checkpoint is written, before the rename) and
    ``store_commit`` (inside the transaction that records a finished run, before it commits).

Unset, the hooks cost one dictionary lookup.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from xstilts.errors import ConfigError

ENV = "XSTILTS_FAULT"
POINTS = frozenset({"cache_write", "train_step", "loss", "evaluate", "checkpoint_write", "store_commit"})
ACTIONS = frozenset({"kill", "enospc", "nan", "nangrad"})
POISON_ACTIONS = frozenset({"nan", "nangrad"})

_hits: dict[str, int] = {}
_armed: dict[str, tuple[int, str]] = {}
_spec_seen: str | None = None


def parse_spec(spec: str) -> dict[str, tuple[int, str]]:
    """``"point:n[:action],..."`` → {point: (n, action)}; a typo is a ConfigError, not a silent no-op."""
    out: dict[str, tuple[int, str]] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        parts = item.split(":")
        if len(parts) not in (2, 3) or not parts[1].isdigit() or int(parts[1]) < 1:
            raise ConfigError(f"{ENV}: expected 'point:n[:action]' with n >= 1, got {item!r}")
        point, n, action = parts[0], int(parts[1]), parts[2] if len(parts) == 3 else "kill"
        if point not in POINTS:
            raise ConfigError(f"{ENV}: unknown fault point {point!r} (known: {', '.join(sorted(POINTS))})")
        if action not in ACTIONS:
            raise ConfigError(f"{ENV}: unknown action {action!r} (known: {', '.join(sorted(ACTIONS))})")
        out[point] = (n, action)
    return out


def reset() -> None:
    """Forget visit counts: the next visit of every point is the first (tests run the CLI repeatedly)."""
    global _spec_seen
    _spec_seen = None
    _hits.clear()


def _due(point: str) -> str | None:
    """Count a visit to ``point``; the action to perform if this visit is the armed one."""
    global _spec_seen, _armed
    spec = os.environ.get(ENV)
    if not spec:
        return None
    if spec != _spec_seen:  # a new spec (tests change it within one process) starts counting afresh
        _armed = parse_spec(spec)
        _spec_seen = spec
        _hits.clear()
    armed = _armed.get(point)
    if armed is None:
        return None
    _hits[point] = _hits.get(point, 0) + 1
    return armed[1] if _hits[point] == armed[0] else None


def _kill_self() -> None:
    sig = getattr(signal, "SIGKILL", None)
    if sig is None:  # pragma: no cover - Windows has no SIGKILL
        os._exit(137)
    os.kill(os.getpid(), sig)


def fault_point(point: str, path: str | Path | None = None) -> None:
    """Die (``kill``) or fail as a full disk (``enospc``, naming ``path``) if ``XSTILTS_FAULT`` says so."""
    action = _due(point)
    if action == "kill":
        _kill_self()
    elif action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path) if path is not None else None)


def _nan_grad() -> Any:
    import torch

    class NanGrad(torch.autograd.Function):
        """Identity forward, NaN backward: a finite loss whose gradients overflow."""

        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            return x.clone()

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            return torch.full_like(grad, float("nan"))

    return NanGrad


def poison(point: str, value: Any) -> Any:
    """``value`` unchanged, or (when armed) NaN (``nan``) or with a NaN gradient (``nangrad``)."""
    action = _due(point)
    if action == "nan":
        return value * float("nan")
    if action == "nangrad":
        return _nan_grad().apply(value)
    if action is not None:
        raise ConfigError(f"{ENV}: action {action!r} does not apply to point {point!r}")
    return value


# ---- atomic writes -----------------------------------------------------------------------------

def _tmp_name(target: Path) -> str:
    return f".{target.name}.{socket.gethostname()}.{os.getpid()}.tmp"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_stale(target: Path) -> list[Path]:
    """Remove temporary files of ``target`` left by dead writers on this host; returns them."""
    host = socket.gethostname()
    prefix = f".{target.name}."
    removed = []
    for tmp in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        owner = tmp.name[len(prefix):-len(".tmp")]
        tmp_host, _, pid = owner.rpartition(".")
        if tmp_host == host and pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


FOREIGN_TMP = re.compile(r"\.tmp[A-Za-z0-9_]{6}")  # Python's/Rust's tempfile names (safetensors' save_file)


def sweep_directory(directory: str | Path) -> list[Path]:
    """Remove temp files that killed writers left in a directory only one run writes (a checkpoint dir).

    xstilts' own temp files go when their process is gone, as in :func:`sweep_stale`. Tempfile-style
    ``.tmpXXXXXX`` names always go: xstilts no longer writes any (they are what a killed
    ``safetensors.save_file`` left), and the caller is the one process writing this directory now.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    host = socket.gethostname()
    removed = []
    for tmp in directory.iterdir():
        name = tmp.name
        if FOREIGN_TMP.fullmatch(name):
            stale = True
        elif name.startswith(".") and name.endswith(".tmp"):
            pid = name[:-len(".tmp")].rpartition(".")[2]
            stale = pid.isdigit() and name.endswith(f".{host}.{pid}.tmp") and not _alive(int(pid))
        else:
            stale = False
        if stale and tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def sweep_checkpoints(root: str | Path) -> list[Path]:
    """:func:`sweep_directory` on every run's checkpoint directory under ``root`` (on resume)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [p for d in sorted(root.iterdir()) if d.is_dir() for p in sweep_directory(d)]


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target: str | Path, fault: str | None = None, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target`` in one rename.

    On any exception the temporary file is removed and ``target`` is left as it was. ``fault``
    names the :func:`fault_point` reached after the write and before the rename. ``fsync``
    flushes file and directory so the rename survives a power cut, not just a crash.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(target)
    tmp = target.parent / _tmp_name(target)
    try:
        with naming(target):
            yield tmp
            if fsync:
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
            if fault is not None:
                fault_point(fault, tmp)
            os.replace(tmp, target)
            if fsync:
                _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """An OSError without a file name (a ``write`` on a full disk: ``[Errno 28] No space left on
    device``, nothing more) is raised again naming ``path``, so its one line says which file failed.
    """
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc
        raise
