"""The store's per-step per-example table: written with the run, replaced on re-completion, compact,
and absent without harm from stores written before it existed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from xstilts.errors import XstiltsError
from xstilts.store import RunResult, Score, Store


def _rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """XNLI-like rows: (hit, 1, 1)."""
    return np.stack([(rng.random(n) < 0.7).astype(float), np.ones(n), np.ones(n)], axis=1)


def _result(curve_stats: dict) -> RunResult:
    return RunResult(scores=[Score("xnli", "en", "eval", "accuracy", 70.0, 2, "final")], selected_step=2,
                     curve_stats=curve_stats)


def test_curve_stats_round_trip_and_replacement(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    stats = {("xnli", lang, "eval", "accuracy", step): _rows(rng, 50) for lang in ("en", "de") for step in (2, 4)}
    with Store(tmp_path) as store:
        store.register_run("r1", "target", "none", "xnli", 1, "h", None)
        # rows left by an earlier attempt that never finished are replaced, as example_stats are
        store.conn.execute("INSERT INTO curve_stats VALUES ('r1', 'xnli', 'fr', 'eval', 'accuracy', 2, ?)",
                           (b"stale",))
        store.conn.commit()
        store.mark_running("r1")
        store.complete_run("r1", _result(stats), wall_s=1.0)
        got = {(r["task"], r["language"], r["split"], r["metric"], r["step"]): r for r in store.iter_curve_stats()}
    assert set(got) == set(stats)
    for key, arr in stats.items():
        assert np.array_equal(got[key]["stats"], arr) and got[key]["stats"].dtype == np.float64
        assert got[key]["target"] == "xnli" and got[key]["phase"] == "target" and got[key]["seed"] == 1


def test_curve_stats_are_compact(tmp_path: Path) -> None:
    """15 languages x 2,490 rows x 10 steps, XNLI-like: well under a megabyte (raw float64: 9 MB)."""
    rng = np.random.default_rng(1)
    stats = {("xnli", f"l{i}", "eval", "accuracy", step): _rows(rng, 2490)
             for i in range(15) for step in range(100, 1100, 100)}
    with Store(tmp_path) as store:
        store.register_run("r1", "target", "none", "xnli", 1, "h", None)
        store.mark_running("r1")
        store.complete_run("r1", _result(stats), wall_s=1.0)
        size = store.conn.execute("SELECT sum(length(stats)) FROM curve_stats").fetchone()[0]
    raw = sum(a.nbytes for a in stats.values())
    assert size < 0.05 * raw and size < 400_000, size


def test_old_store_without_the_table(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.register_run("r1", "target", "none", "xnli", 1, "h", None)
        store.mark_running("r1")
        store.complete_run("r1", _result({}), wall_s=1.0)
    conn = sqlite3.connect(tmp_path / Store.FILENAME)
    conn.execute("DROP TABLE curve_stats")  # as written before the table existed
    conn.commit()
    conn.close()
    with Store(tmp_path, readonly=True) as store:
        assert list(store.iter_curve_stats()) == []
        assert store.is_done("r1")
    with Store(tmp_path) as store:  # opened for writing, it gains the table
        assert list(store.iter_curve_stats()) == []
        store.register_run("r2", "target", "none", "xnli", 2, "h", None)
        store.mark_running("r2")
        store.complete_run("r2", _result({("xnli", "en", "eval", "accuracy", 2): np.zeros((3, 3))}), wall_s=1.0)
        assert [r["run_id"] for r in store.iter_curve_stats()] == ["r2"]


def test_a_blob_that_does_not_decode_is_a_damaged_store_naming_table_run_and_step(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    with Store(tmp_path) as store:
        store.register_run("r1", "target", "none", "xnli", 1, "h", None)
        store.mark_running("r1")
        store.complete_run("r1", _result({("xnli", "de", "eval", "accuracy", 4): _rows(rng, 20)}), wall_s=1.0)
        store.conn.execute("UPDATE curve_stats SET stats=x'00010203'")
        store.conn.commit()
        with pytest.raises(XstiltsError) as info:
            list(store.iter_curve_stats())
    line = info.value.one_line()
    assert line.startswith(f"{store.path}: damaged results store (table curve_stats, run r1: per-example stats of "
                           "xnli de eval accuracy at step 4 do not decode ("), line
    assert line.endswith("); restore it from a backup, or move it away and run the config again to recompute "
                         "every run"), line
