"""The results store: one SQLite file per experiment directory.

Why SQLite: one file, transactions (a run's results land all at once or not at all), readable
from pandas or the ``sqlite3`` shell, and nothing to install. Only the process that executes the
plan writes to it; everything downstream (``xstilts results``, analysis, report) only reads.

Tables
------
``runs``           one row per planned run (phase 2 ``intermediate`` or phase 3 ``target``).
``scores``         one row per (run, task, language, split, metric, step, kind); ``kind`` is
                   ``curve`` for the evaluations made during training (every language's dev score
                   at every evaluation step) and ``final`` for the selected checkpoint; with
                   ``[target.selection] average`` also ``average-all`` / ``average-lastK`` for the
                   averaged weights (step: the last one), which readers of ``final`` never see.
``example_stats``  per-example ``(hits, n_pred, n_gold)`` rows of a final evaluation
                   (see :mod:`xstilts.metrics.stats`), stored as a float64 ``.npy`` blob; those of
                   an averaged model have the average's kind as their ``split``.
``curve_stats``    per-example rows of the primary metric at *every* evaluation step of a phase-3
                   run, every language (the analysis cross-fits the per-language oracle on them);
                   a zlib-compressed float64 ``.npy`` blob, lossless and small (0/1 and count
                   columns compress well). Added later: ``CREATE TABLE IF NOT EXISTS`` lets older
                   stores open, and readers treat a store without it as having no curve stats.

Checkpoint paths (``runs.checkpoint``) are stored relative to the experiment directory (the
store's own directory), so a moved (``mv A B``) or copied (``cp -r A B``) experiment resumes from
its own checkpoints; only a checkpoint in an explicit external ``ray.shared_dir`` (a path outside
the experiment, or a URL) is stored as it was given. Stores written before that recorded absolute
(or working-directory-relative) paths; opening one for writing rewrites them once
(:func:`migrated_path`), and reading resolves them the same way.

Phase-3 English rows (scores, example and curve stats of split ``eval``) are the report half of
English dev; the selection half's curve is split ``select`` (see :mod:`xstilts.phases.evaluate`).
"""

from __future__ import annotations

import difflib
import errno
import fnmatch
import io
import json
import os
import shutil
import sqlite3
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xstilts.errors import XstiltsError
from xstilts.faults import fault_point

DAMAGED = ("damaged results store ({detail}); restore it from a backup, or move it away and run the config "
           "again to recompute every run")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id        TEXT PRIMARY KEY,
    phase         TEXT NOT NULL,          -- 'intermediate' | 'target'
    intermediate  TEXT NOT NULL,          -- setting name, 'none' for the baseline
    target        TEXT,                   -- target task (NULL for phase-2 runs)
    seed          INTEGER NOT NULL,
    config_hash   TEXT NOT NULL,          -- hash of everything that determines the run's result
    parent_run    TEXT,                   -- the phase-2 run a target run starts from
    status        TEXT NOT NULL DEFAULT 'pending',  -- pending | running | done | failed
    attempts      INTEGER NOT NULL DEFAULT 0,
    started_at    REAL,
    finished_at   REAL,
    wall_s        REAL,
    train_tokens  INTEGER,
    train_steps   INTEGER,
    selected_step INTEGER,
    checkpoint    TEXT,
    error         TEXT,
    extra         TEXT                    -- JSON: anything else worth keeping (throughput, ...)
);
CREATE TABLE IF NOT EXISTS scores (
    run_id   TEXT NOT NULL REFERENCES runs(run_id),
    task     TEXT NOT NULL,
    language TEXT NOT NULL,
    split    TEXT NOT NULL,
    metric   TEXT NOT NULL,
    value    REAL NOT NULL,
    step     INTEGER NOT NULL,
    kind     TEXT NOT NULL,               -- 'curve' | 'final'
    PRIMARY KEY (run_id, task, language, split, metric, step, kind)
);
CREATE TABLE IF NOT EXISTS example_stats (
    run_id   TEXT NOT NULL REFERENCES runs(run_id),
    task     TEXT NOT NULL,
    language TEXT NOT NULL,
    split    TEXT NOT NULL,
    metric   TEXT NOT NULL,
    stats    BLOB NOT NULL,
    PRIMARY KEY (run_id, task, language, split, metric)
);
CREATE TABLE IF NOT EXISTS curve_stats (
    run_id   TEXT NOT NULL REFERENCES runs(run_id),
    task     TEXT NOT NULL,
    language TEXT NOT NULL,
    split    TEXT NOT NULL,
    metric   TEXT NOT NULL,
    step     INTEGER NOT NULL,
    stats    BLOB NOT NULL,               -- zlib-compressed float64 .npy
    PRIMARY KEY (run_id, task, language, split, metric, step)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Score:
    """One evaluated number."""

    task: str
    language: str
    split: str
    metric: str
    value: float
    step: int
    kind: str = "final"


@dataclass
class RunResult:
    """Everything a finished run writes to the store, in one transaction."""

    scores: list[Score] = field(default_factory=list)
    # (task, language, split, metric) -> (n, 3) per-example stats
    example_stats: dict[tuple[str, str, str, str], np.ndarray] = field(default_factory=dict)
    # (task, language, split, metric, step) -> (n, 3) per-example stats of one evaluation step
    curve_stats: dict[tuple[str, str, str, str, int], np.ndarray] = field(default_factory=dict)
    checkpoint: str | None = None
    train_tokens: int = 0
    train_steps: int = 0
    selected_step: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_NPY_MAGIC = b"\x93NUMPY"


def run_extra(row: Mapping[str, Any]) -> dict[str, Any]:
    """A run row's ``extra`` record (a JSON text in the store) as a dict; {} where it has none or it
    does not parse, as in stores written before a field existed."""
    extra = row.get("extra")
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except ValueError:
            return {}
    return extra if isinstance(extra, dict) else {}


def _to_blob(arr: np.ndarray, compress: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(arr, dtype=np.float64), allow_pickle=False)
    raw = buf.getvalue()
    return zlib.compress(raw, 6) if compress else raw


def _from_blob(blob: bytes) -> np.ndarray:
    """A blob of :func:`_to_blob`, compressed or not (a plain ``.npy`` starts with its magic)."""
    raw = bytes(blob)
    if not raw.startswith(_NPY_MAGIC):
        raw = zlib.decompress(raw)
    return np.load(io.BytesIO(raw), allow_pickle=False)


PATHS_META = "checkpoint_paths"  # meta key: "relative" once every checkpoint path is experiment-relative


#: What each meta key holds (its JSON): its type, the type of its items or values (None: any), in words.
#: A value of another shape (a hand edit, a damaged row) is a damaged store, not a traceback later.
META_KINDS: dict[str, tuple[type, type | tuple[type, ...] | None, str]] = {
    "plan": (list, str, "a list of run ids"),
    "config": (dict, None, "a table"),
    "primary_metric": (dict, str, "a table of metric names"),
    "chance": (dict, (int, float), "a table of numbers"),
    "parallel": (list, str, "a list of task names"),
    PATHS_META: (str, None, "a string"),
}


def _meta_mismatch(key: str, value: Any) -> str | None:
    """Why ``value`` is not what meta ``key`` holds (see :data:`META_KINDS`), or None."""
    if key not in META_KINDS:
        return None
    kind, item, words = META_KINDS[key]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    if isinstance(value, kind) and (item is None or all(isinstance(v, item) for v in items)):
        return None
    return f"{json.dumps(value)[:60]} is not {words}"


def _is_url(value: str) -> bool:
    return "://" in value


def relative_path(value: str | None, root: Path) -> str | None:
    """What the store records for a checkpoint written now: relative (POSIX) when it lies inside the
    experiment directory ``root``, else as given (an external shared directory or URL)."""
    if value is None or _is_url(value):
        return value
    path, base = Path(value).resolve(), root.resolve()
    if path.is_relative_to(base):
        return path.relative_to(base).as_posix()
    return str(path)


def migrated_path(value: str | None, root: Path) -> str | None:
    """A checkpoint path as an older store recorded it (absolute, or relative to the working directory
    of the run that wrote it), in today's form.

    Inside ``root``: relative. ``<X>/checkpoints/<run>`` where ``X`` is another experiment (it holds a
    results store) or ``root`` has that checkpoint itself: ``checkpoints/<run>`` of *this* experiment.
    That is what an experiment moved away from ``X`` needs, and a copy of ``X`` must never read
    ``X``'s weights (if the copy lacks the file, the run says its checkpoint is missing). Anything
    else was an explicit shared directory and stays as it is.
    """
    if value is None or _is_url(value):
        return value
    path, base = Path(value).resolve(), root.resolve()  # a relative legacy path is taken from here
    if path.is_relative_to(base):
        return path.relative_to(base).as_posix()
    if path.parent.name == "checkpoints":
        own = base / "checkpoints" / path.name
        if own.exists() or (path.parent.parent / Store.FILENAME).exists():
            return f"checkpoints/{path.name}"
    return str(path)


def open_problem(directory: Path) -> XstiltsError | None:
    """What ``xstilts run`` would stop at opening the results store in ``directory`` (damaged,
    unreadable), or None where it opens or there is none yet. ``plan --check`` asks this: it reads
    what a run reads before it writes (the header, the schema, the checkpoint-paths mark, the runs; the
    other meta rows a run rewrites) and creates nothing (a store that is not a readable and writable
    file is the output directory check's to report)."""
    path = Path(directory) / Store.FILENAME
    if not path.is_file() or not os.access(path, os.R_OK | os.W_OK):
        return None
    try:
        with Store(path, probe=True) as store:
            try:
                store.get_meta(PATHS_META)
                store.runs()
            except sqlite3.OperationalError as exc:  # locked too long, an I/O error
                raise XstiltsError(f"cannot open the results store: {exc}", path) from None
            except sqlite3.DatabaseError as exc:  # a page past the header is malformed
                raise XstiltsError(DAMAGED.format(detail=str(exc)), path) from None
    except XstiltsError as exc:
        return exc
    return None


def _stays_empty(path: Path, wait_s: float = 3.0) -> bool:
    """True for a store file that is 0 bytes and stays so for ``wait_s``.

    Another process that is creating the store (the main rank of ``accelerate launch``, a second
    ``xstilts run``) leaves it empty for a few milliseconds between creating the file and writing
    its header; only a file that stays empty was cut short.
    """
    deadline = time.monotonic() + wait_s
    while path.is_file() and path.stat().st_size == 0:
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.05)
    return False


class Store:
    """Reads and writes one experiment's ``results.sqlite``."""

    FILENAME = "results.sqlite"

    def __init__(self, path: str | Path, readonly: bool = False, probe: bool = False):
        """Open (or create) the store at ``path``, a file or its experiment directory.

        ``readonly`` never writes; ``probe`` (read-only too) also creates nothing beside the store: no
        ``-wal``/``-shm`` files where none are (``plan --check``; see :func:`open_problem`).
        """
        path = Path(path)
        readonly = readonly or probe
        if path.is_dir() or path.suffix != ".sqlite":
            path = path / self.FILENAME
        self.path = path
        self._migrated: bool | None = None  # checkpoint paths relative? (read from meta when needed)
        if readonly and not path.exists():
            raise XstiltsError("no results store here (run `xstilts run` first)", path)
        if _stays_empty(path):
            # SQLite would take an empty file for a new database: a store cut to 0 bytes would
            # silently become an empty one, and every finished run would be recomputed
            raise XstiltsError(DAMAGED.format(detail="the file is empty (0 bytes)"), path)
        try:
            if readonly:
                # no -wal file: no writer has the store open, and reading it as an immutable file
                # creates none (a plain read-only open leaves -wal and -shm files behind)
                quiet = probe and not path.with_name(path.name + "-wal").exists()
                self.conn = sqlite3.connect(f"file:{path}?mode=ro{'&immutable=1' if quiet else ''}", uri=True,
                                            timeout=60)
                self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads the header
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.conn = sqlite3.connect(path, timeout=60)
                self._set_wal()
                self.conn.execute("PRAGMA synchronous=FULL")
                self.conn.executescript(SCHEMA)
                self.conn.row_factory = sqlite3.Row
                self._migrate_paths()
        except sqlite3.OperationalError as exc:  # cannot open (permissions, a directory), locked too long
            self._close_failed()
            if exc.sqlite_errorname == "SQLITE_FULL":
                raise XstiltsError(f"{os.strerror(errno.ENOSPC)} (results store: {exc})", path) from exc
            raise XstiltsError(f"cannot open the results store: {exc}", path) from exc
        except sqlite3.DatabaseError as exc:  # not a database, malformed
            self._close_failed()
            raise XstiltsError(DAMAGED.format(detail=str(exc)), path) from exc
        except XstiltsError:  # a damaged meta row (read on migration)
            self._close_failed()
            raise
        self.conn.row_factory = sqlite3.Row

    def _close_failed(self) -> None:
        """Close the connection of an open that failed (its files are not left held open)."""
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()

    def _damaged(self, table: str, run_id: str | None, problem: str) -> XstiltsError:
        """The error for a row that does not read back as written: names the table and run."""
        run = f", run {run_id}" if run_id else ""
        return XstiltsError(DAMAGED.format(detail=f"table {table}{run}: {problem}"), self.path)

    def _stats(self, table: str, row: Mapping[str, Any]) -> np.ndarray:
        """A row's per-example stats blob as an array; one that does not decode is a damaged store."""
        try:
            return _from_blob(row["stats"])
        except (zlib.error, ValueError, EOFError, TypeError) as exc:
            step = f" at step {row['step']}" if "step" in row else ""
            raise self._damaged(table, row["run_id"], f"per-example stats of {row['task']} {row['language']} "
                               f"{row['split']} {row['metric']}{step} do not decode ({exc})") from exc

    def _score_rows(self, rows: Iterable[sqlite3.Row], run_id: str | None = None) -> list[dict[str, Any]]:
        """Score rows as dicts; a value or step that is not a number is a damaged store."""
        out = [dict(r) for r in rows]
        for r in out:
            if not isinstance(r["value"], (int, float)) or not isinstance(r["step"], int):
                bad = "value" if not isinstance(r["value"], (int, float)) else "step"
                raise self._damaged("scores", r.get("run_id", run_id),
                                   f"{r['task']} {r['language']} {r['metric']}: {bad} {r[bad]!r} is not a number")
        return out

    def _set_wal(self, attempts: int = 100) -> None:
        """Switch to WAL. Two processes opening a new store at once (ranks under ``accelerate launch``)
        can get SQLITE_BUSY here without the busy timeout applying, so retry for a while."""
        for attempt in range(attempts):
            try:
                self.conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == attempts - 1:
                    raise
                time.sleep(0.1)

    @property
    def root(self) -> Path:
        """The experiment directory: what stored checkpoint paths are relative to."""
        return self.path.parent

    def _migrate_paths(self) -> None:
        """Rewrite a pre-relative store's checkpoint paths once (see :func:`migrated_path`)."""
        if self.get_meta(PATHS_META) == "relative":
            return
        with self.transaction() as c:
            rows = c.execute("SELECT run_id, checkpoint FROM runs WHERE checkpoint IS NOT NULL").fetchall()
            for run_id, old in rows:
                new = migrated_path(old, self.root)
                if new != old:
                    c.execute("UPDATE runs SET checkpoint=? WHERE run_id=?", (new, run_id))
            c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (PATHS_META, json.dumps("relative")))
        self._migrated = True

    def checkpoint_path(self, stored: str | None) -> str | None:
        """Where a stored checkpoint path points now: an absolute path (or the URL as stored)."""
        if stored is None or _is_url(stored):
            return stored
        if self._migrated is None:
            self._migrated = self.get_meta(PATHS_META) == "relative"
        if not self._migrated:  # an old store opened read-only is not rewritten: resolve as on migration
            stored = migrated_path(stored, self.root) or stored
        path = Path(stored)
        return str(path if path.is_absolute() else self.root.resolve() / path)

    def _resolved(self, row: sqlite3.Row) -> dict[str, Any]:
        d = dict(row)
        d["checkpoint"] = self.checkpoint_path(d["checkpoint"])
        return d

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing block: commits on success, rolls back on any exception."""
        with self.conn:
            yield self.conn

    # ---- meta ---------------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        """A meta value; one that is not JSON, or not of its key's kind (:data:`META_KINDS`), is a damaged store."""
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        if row is None:
            return default
        try:
            value = json.loads(row["value"])
        except (ValueError, TypeError) as exc:  # not JSON text (TypeError: a BLOB)
            raise self._damaged("meta", None, f"key {key!r} is not JSON ({exc})") from None
        problem = _meta_mismatch(key, value)
        if problem:
            raise self._damaged("meta", None, f"key {key!r}: {problem}")
        return value

    # ---- runs ---------------------------------------------------------------------------
    def register_run(
        self,
        run_id: str,
        phase: str,
        intermediate: str,
        target: str | None,
        seed: int,
        config_hash: str,
        parent_run: str | None,
    ) -> None:
        """Add a planned run; a run already present (same id) is left exactly as it is."""
        with self.transaction() as c:
            c.execute(
                "INSERT OR IGNORE INTO runs (run_id, phase, intermediate, target, seed, config_hash,"
                " parent_run) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, phase, intermediate, target, seed, config_hash, parent_run),
            )

    def run(self, run_id: str) -> dict[str, Any] | None:
        """A run's row; ``checkpoint`` resolved against this experiment directory."""
        row = self.conn.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return self._resolved(row) if row else None

    def runs(self) -> list[dict[str, Any]]:
        """Every run's row in plan order; ``checkpoint`` resolved against this experiment directory."""
        return [self._resolved(r) for r in self.conn.execute("SELECT * FROM runs ORDER BY rowid")]

    def is_done(self, run_id: str) -> bool:
        row = self.run(run_id)
        return bool(row and row["status"] == "done")

    def match_runs(self, patterns: Sequence[str]) -> list[str]:
        """Run ids named by exact ids or shell patterns (``tgt-sick-*``), in plan order; a name that
        matches nothing is an XstiltsError (a typo must not forget nothing in silence)."""
        ids = [r["run_id"] for r in self.conn.execute("SELECT run_id FROM runs ORDER BY rowid")]
        chosen: set[str] = set()
        for pattern in patterns:
            found = fnmatch.filter(ids, pattern) if any(c in pattern for c in "*?[") else \
                [pattern] if pattern in ids else []
            if not found:
                close = difflib.get_close_matches(pattern, ids, n=1)
                hint = f"; did you mean {close[0]}?" if close else f" (it has {len(ids)} runs)"
                raise XstiltsError(f"no run {pattern!r} in this store{hint}", self.path)
            chosen.update(found)
        return [i for i in ids if i in chosen]

    def dependants(self, run_ids: Iterable[str]) -> list[str]:
        """``run_ids`` and every run that starts from one of them (target runs of a phase-2 run)."""
        parents = dict(self.conn.execute("SELECT run_id, parent_run FROM runs ORDER BY rowid").fetchall())
        out = set(run_ids)
        grew = True
        while grew:
            more = {r for r, p in parents.items() if p in out} - out
            out |= more
            grew = bool(more)
        return [r for r in parents if r in out]

    def forget(self, run_ids: Sequence[str]) -> list[str]:
        """Delete runs from every table (one transaction), then their checkpoint directories.

        Every table with a ``run_id`` column is cleared, so tables added later are covered too.
        Checkpoints in this experiment directory are deleted; one in an external shared directory
        (another experiment may use the same run) is kept, and returned. Rows go first: a kill
        between the two leaves a checkpoint no run refers to, which the rerun overwrites.
        """
        rows = {r["run_id"]: r for r in self.runs() if r["run_id"] in set(run_ids)}
        tables = [name for (name,) in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                  if any(col[1] == "run_id" for col in self.conn.execute(f'PRAGMA table_info("{name}")'))]
        with self.transaction() as c:
            for table in sorted(tables, key=lambda t: t == "runs"):  # the runs table last
                c.executemany(f'DELETE FROM "{table}" WHERE run_id=?', [(r,) for r in run_ids])
        base = self.root.resolve()
        kept: list[str] = []
        for run_id in run_ids:
            places = {base / "checkpoints" / run_id}
            stored = rows[run_id]["checkpoint"] if run_id in rows else None
            if stored is not None and not _is_url(stored) and Path(stored).resolve().is_relative_to(base):
                places.add(Path(stored).resolve())
            elif stored is not None:
                kept.append(stored)
            for place in places:
                if place.is_dir():
                    shutil.rmtree(place)
                elif place.exists():
                    place.unlink()
        return kept

    def mark_running(self, run_id: str) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE runs SET status='running', started_at=?, attempts=attempts+1, error=NULL"
                " WHERE run_id=? AND status!='done'",
                (time.time(), run_id),
            )

    def mark_failed(self, run_id: str, error: str) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE runs SET status='failed', finished_at=?, error=? WHERE run_id=? AND status!='done'",
                (time.time(), error, run_id),
            )

    def reopen_runs(self, run_ids: Iterable[str]) -> None:
        """Make finished runs pending again, without their results, so the next pass recomputes them
        (stale runs under ``xstilts run --rerun-stale``); one transaction for all of them."""
        ids = [(run_id,) for run_id in run_ids]
        with self.transaction() as c:
            for table in ("scores", "example_stats", "curve_stats"):
                c.executemany(f"DELETE FROM {table} WHERE run_id=?", ids)
            c.executemany("UPDATE runs SET status='pending', error=NULL WHERE run_id=? AND status='done'", ids)

    def complete_run(self, run_id: str, result: RunResult, wall_s: float) -> None:
        """Write a run's scores and mark it done, atomically. A run already done is never touched."""
        with self.transaction() as c:
            row = c.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()
            if row is None:
                raise KeyError(f"unknown run {run_id}")
            if row["status"] == "done":
                return
            c.execute("DELETE FROM scores WHERE run_id=?", (run_id,))
            c.execute("DELETE FROM example_stats WHERE run_id=?", (run_id,))
            c.execute("DELETE FROM curve_stats WHERE run_id=?", (run_id,))
            c.executemany(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (run_id, s.task, s.language, s.split, s.metric, float(s.value), int(s.step), s.kind)
                    for s in result.scores
                ],
            )
            c.executemany(
                "INSERT OR REPLACE INTO example_stats VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (run_id, task, lang, split, metric, _to_blob(arr))
                    for (task, lang, split, metric), arr in result.example_stats.items()
                ],
            )
            c.executemany(
                "INSERT OR REPLACE INTO curve_stats VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (run_id, task, lang, split, metric, int(step), _to_blob(arr, compress=True))
                    for (task, lang, split, metric, step), arr in result.curve_stats.items()
                ],
            )
            c.execute(
                "UPDATE runs SET status='done', finished_at=?, wall_s=?, train_tokens=?, train_steps=?,"
                " selected_step=?, checkpoint=?, error=NULL, extra=? WHERE run_id=?",
                (
                    time.time(),
                    wall_s,
                    result.train_tokens,
                    result.train_steps,
                    result.selected_step,
                    relative_path(result.checkpoint, self.root),
                    json.dumps(result.extra, sort_keys=True),
                    run_id,
                ),
            )
            fault_point("store_commit", self.path)  # tests: die with every row written, not committed

    # ---- reading ------------------------------------------------------------------------
    def scores(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Score rows joined with their run's design columns (intermediate, target, seed, phase)."""
        sql = (
            "SELECT s.*, r.phase, r.intermediate, r.target, r.seed FROM scores s"
            " JOIN runs r USING (run_id) WHERE r.status='done'"
        )
        args: tuple[Any, ...] = ()
        if kind is not None:
            sql += " AND s.kind=?"
            args = (kind,)
        plan = self.current_plan()
        rows = self._score_rows(self.conn.execute(sql + " ORDER BY s.rowid", args))
        return [r for r in rows if plan is None or r["run_id"] in plan]

    def run_scores(self, run_id: str, kind: str = "final") -> list[dict[str, Any]]:
        """One run's score rows of ``kind`` (whatever its status and whichever plan it belongs to)."""
        sql = "SELECT task, language, split, metric, value, step FROM scores WHERE run_id=? AND kind=? ORDER BY rowid"
        return self._score_rows(self.conn.execute(sql, (run_id, kind)), run_id)

    def current_plan(self) -> set[str] | None:
        """Run ids of the config last run in this directory (older configs' runs stay, unused)."""
        plan = self.get_meta("plan")
        return set(plan) if plan is not None else None

    def scores_frame(self, kind: str | None = None):  # -> pandas.DataFrame
        import pandas as pd

        rows = self.scores(kind)
        cols = ["run_id", "task", "language", "split", "metric", "value", "step", "kind",
                "phase", "intermediate", "target", "seed"]
        return pd.DataFrame(rows, columns=cols)

    def example_stats(self, run_id: str, task: str, language: str, split: str, metric: str) -> np.ndarray:
        row = self.conn.execute(
            "SELECT stats FROM example_stats WHERE run_id=? AND task=? AND language=? AND split=? AND metric=?",
            (run_id, task, language, split, metric),
        ).fetchone()
        if row is None:
            raise KeyError((run_id, task, language, split, metric))
        return self._stats("example_stats", {"run_id": run_id, "task": task, "language": language, "split": split,
                                             "metric": metric, "stats": row["stats"]})

    def iter_example_stats(self) -> Iterable[dict[str, Any]]:
        """Every stored per-example table with its run's design columns."""
        sql = (
            "SELECT e.*, r.intermediate, r.target, r.seed, r.phase FROM example_stats e"
            " JOIN runs r USING (run_id) WHERE r.status='done'"
        )
        plan = self.current_plan()
        for r in self.conn.execute(sql):
            if plan is not None and r["run_id"] not in plan:
                continue
            d = dict(r)
            d["stats"] = self._stats("example_stats", d)
            yield d

    def iter_curve_stats(self) -> Iterable[dict[str, Any]]:
        """Every stored per-step per-example table (see ``curve_stats``) with its run's design columns.

        A store written before the table existed, opened read-only, has none: nothing is yielded.
        """
        sql = (
            "SELECT c.*, r.intermediate, r.target, r.seed, r.phase FROM curve_stats c"
            " JOIN runs r USING (run_id) WHERE r.status='done'"
        )
        try:
            rows = self.conn.execute(sql)
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return
            raise
        plan = self.current_plan()
        for r in rows:
            if plan is not None and r["run_id"] not in plan:
                continue
            d = dict(r)
            d["stats"] = self._stats("curve_stats", d)
            yield d
