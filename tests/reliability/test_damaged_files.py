"""Files damaged after they were written: the store, a checkpoint, leftovers of killed writers.

A disk error, a bad copy or a kill can leave a results store overwritten or cut to nothing, a
phase-2 checkpoint cut in half, or a model-sized temporary file beside a checkpoint. Each must end
in one line naming the file (and, where xstilts can, how to recover), exit code 2, no traceback.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from pathlib import Path

import pytest
import torch
from _reliability import experiment_toml, one_error_line
from safetensors.torch import load_file, save_file
from torch import nn
from typer.testing import CliRunner

from xstilts.analysis.synthetic import StepProfile, SyntheticTarget, write_strategy_experiment, write_synthetic_experiment
from xstilts.checkpoint import ENCODER_FILE, load_encoder_weights, save_encoder
from xstilts.cli import app
from xstilts.errors import XstiltsError
from xstilts.faults import sweep_checkpoints
from xstilts.store import Store
from xstilts.tasks import get_task


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small complete store (synthetic: what a finished study writes, in a second)."""
    target = SyntheticTarget("xnli", "accuracy", {"en": 80.0, "de": 70.0}, {"sick": 2.0}, n_examples=40,
                             chance=100 / 3)
    return write_synthetic_experiment(tmp_path_factory.mktemp("store") / "exp", [target], seeds=(0, 1))


def _damage(store: Path, how: str) -> None:
    if how == "first-4k-overwritten":
        with open(store, "r+b") as fh:
            fh.write(b"\xa5" * 4096)
    elif how == "cut-in-half":
        os.truncate(store, store.stat().st_size // 2)
    else:
        os.truncate(store, 0)
    for side in (store.with_name(store.name + "-wal"), store.with_name(store.name + "-shm")):
        side.unlink(missing_ok=True)


@pytest.mark.parametrize("how", ["first-4k-overwritten", "truncated-to-0"])
@pytest.mark.parametrize("command", ["results", "analyze", "report"])
def test_damaged_store_is_one_line_naming_it(command: str, how: str, finished_store: Path, tmp_path: Path) -> None:
    expdir = tmp_path / "exp"
    expdir.mkdir()
    store = expdir / Store.FILENAME
    store.write_bytes((finished_store / Store.FILENAME).read_bytes())
    _damage(store, how)
    args = [command, str(expdir)] + (["--n-boot", "10"] if command != "results" else [])
    error = one_error_line(args)
    assert f"{store}: damaged results store" in error, error


def _copy_store(expdir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of ``expdir``'s store in a fresh ``tmp_path/exp``: (that directory, the store)."""
    out = tmp_path / "exp"
    out.mkdir()
    store = out / Store.FILENAME
    store.write_bytes((expdir / Store.FILENAME).read_bytes())
    return out, store


@pytest.mark.parametrize("how", ["first-4k-overwritten", "cut-in-half", "truncated-to-0"])
def test_run_on_a_damaged_store_is_one_line_naming_it(how: str, finished_store: Path, tmp_path: Path,
                                                      mini_data: Path, tiny_model: Path) -> None:
    out, store = _copy_store(finished_store, tmp_path)
    _damage(store, how)
    before = store.read_bytes()
    config = tmp_path / "exp.toml"
    config.write_text(experiment_toml(tiny_model, mini_data, out), encoding="utf-8")
    checked = one_error_line(["plan", "--check", str(config)])  # makes the check run makes, creating nothing
    assert sorted(out.iterdir()) == [store] and store.read_bytes() == before
    error = one_error_line(["run", str(config)])
    assert f"{store}: damaged results store" in error, error
    assert checked == error
    assert store.read_bytes() == before  # not "repaired" into an empty store


def test_plan_check_reads_a_sound_store_and_creates_nothing(finished_store: Path, tmp_path: Path, mini_data: Path,
                                                           tiny_model: Path) -> None:
    out, store = _copy_store(finished_store, tmp_path)
    config = tmp_path / "exp.toml"
    config.write_text(experiment_toml(tiny_model, mini_data, out), encoding="utf-8")
    result = CliRunner().invoke(app, ["plan", "--check", str(config)])
    assert result.exit_code == 0 and result.output.startswith(f"OK: {config}"), result.output
    assert sorted(out.iterdir()) == [store]  # no -wal or -shm file either


# ---- damaged rows in a store that opens ------------------------------------------------------------

@pytest.fixture(scope="module")
def store_with_curves(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small complete store with every table filled, per-step per-example rows (curve_stats) too."""
    target = SyntheticTarget("xnli", "accuracy", {"en": 80.0, "de": 70.0}, n_examples=40, chance=100 / 3)
    return write_strategy_experiment(tmp_path_factory.mktemp("curves") / "exp", [StepProfile(target)])


ROW_DAMAGE = {  # table -> (the rows damaged, the damage)
    "example_stats": ("rowid=1", "stats=x'00010203'"),
    "curve_stats": ("rowid=1", "stats=x'00010203'"),
    "scores": ("rowid=(SELECT min(rowid) FROM scores WHERE kind='final')", "value='abc'"),
    "meta": ("1", "value='999'"),
}


@pytest.mark.parametrize(("table", "command"), [
    ("example_stats", "analyze"), ("example_stats", "report"), ("curve_stats", "analyze"), ("curve_stats", "report"),
    ("scores", "results"), ("scores", "analyze"), ("scores", "report"),
    ("meta", "results"), ("meta", "analyze"), ("meta", "report"),
])
def test_a_damaged_row_is_one_line_naming_table_and_run(table: str, command: str, store_with_curves: Path,
                                                        tmp_path: Path) -> None:
    expdir, store = _copy_store(store_with_curves, tmp_path)
    rows, damage = ROW_DAMAGE[table]
    con = sqlite3.connect(store)
    with con:
        where = "meta: key '" if table == "meta" else \
            f"{table}, run {con.execute(f'SELECT run_id FROM {table} WHERE {rows}').fetchone()[0]}: "
        con.execute(f"UPDATE {table} SET {damage} WHERE {rows}")
    con.close()
    args = [command, str(expdir)] + (["--n-boot", "10"] if command != "results" else [])
    error = one_error_line(args)
    assert error.startswith(f"error: {store}: damaged results store (table {where}"), error
    assert error.endswith("restore it from a backup, or move it away and run the config again to recompute "
                          "every run"), error
    assert [p.name for p in expdir.iterdir() if not p.name.startswith(Store.FILENAME)] == []  # nothing half-written


def test_report_into_a_path_that_cannot_be_a_directory(finished_store: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    error = one_error_line(["report", str(finished_store), "--out", str(blocker / "report"), "--n-boot", "10"])
    assert str(blocker) in error, error


# ---- checkpoints ------------------------------------------------------------------------------------

def test_truncated_checkpoint_is_one_line_saying_how_to_recover(tmp_path: Path) -> None:
    encoder = nn.Linear(64, 64)
    directory = tmp_path / "int-sick-s1-abc"
    directory.mkdir()
    path = directory / ENCODER_FILE
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(path))
    os.truncate(path, path.stat().st_size // 2)
    with pytest.raises(XstiltsError) as info:
        load_encoder_weights(nn.Linear(64, 64), directory)
    line = info.value.one_line()
    assert line.startswith(f"{path}: damaged phase-2 checkpoint"), line
    assert "delete this file and the run int-sick-s1-abc" in line and "\n" not in line


def test_checkpoint_write_leaves_only_the_checkpoint(tmp_path: Path) -> None:
    encoder = nn.Linear(8, 4)
    target = save_encoder(encoder, tmp_path / "ckpt")
    assert sorted(p.name for p in target.parent.iterdir()) == [ENCODER_FILE]
    loaded = load_file(str(target))
    assert all(torch.equal(loaded[k], v) for k, v in encoder.state_dict().items())


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child exits at once
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def _strays(directory: Path) -> tuple[Path, Path]:
    """What killed writers leave: safetensors' own temp name, and xstilts' name with a dead pid."""
    directory.mkdir(parents=True, exist_ok=True)
    foreign = directory / ".tmpQ3xZ9a"
    ours = directory / f".{ENCODER_FILE}.{socket.gethostname()}.{_dead_pid()}.tmp"
    for stray in (foreign, ours):
        stray.write_bytes(b"\0" * 1024)
    return foreign, ours


def test_resume_sweeps_temp_files_of_killed_checkpoint_writes(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    foreign, ours = _strays(root / "int-sick-s1-abc")
    keep = root / "int-sick-s1-abc" / ENCODER_FILE
    keep.write_bytes(b"weights")
    live = root / "int-sick-s1-abc" / f".{ENCODER_FILE}.{socket.gethostname()}.{os.getpid()}.tmp"
    live.write_bytes(b"being written")  # a writer that is still alive keeps its file
    assert sorted(sweep_checkpoints(root)) == sorted([foreign, ours])
    assert not foreign.exists() and not ours.exists() and keep.exists() and live.exists()


def test_checkpoint_write_sweeps_its_directory_first(tmp_path: Path) -> None:
    foreign, ours = _strays(tmp_path / "ckpt")
    save_encoder(nn.Linear(8, 4), tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [ENCODER_FILE]


# ---- SICK set names ----------------------------------------------------------------------------------

def test_sick_set_names_in_lower_case_are_read(tmp_path: Path, mini_data: Path) -> None:
    original = mini_data / "english" / "sick" / "SICK.txt"
    lower = tmp_path / "SICK.txt"
    lines = original.read_text(encoding="utf-8").splitlines()
    lower.write_text("\n".join([lines[0], *("\t".join([*line.split("\t")[:-1], line.split("\t")[-1].lower()])
                                            for line in lines[1:])]) + "\n", encoding="utf-8")
    for split in ("train", "eval"):
        want = get_task("sick").at(mini_data).read(split, "en")
        assert want and get_task("sick", {"file": str(lower)}).at(mini_data).read(split, "en") == want
