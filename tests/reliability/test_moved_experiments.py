"""An experiment directory is self-contained: moved (``mv A B``) or copied (``cp -r A B``), it
resumes and extends from its own phase-2 checkpoints, and a copy never reads the original's.

The store records checkpoint paths relative to the experiment directory; a store written before
that (absolute paths) is rewritten when it is opened for writing. Each test extends the study by a
target (PAN-X), whose run starts from the finished phase-2 run's checkpoint.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from _reliability import write_experiment
from typer.testing import CliRunner

from xstilts.checkpoint import load_encoder_weights
from xstilts.cli import app
from xstilts.phases import target as target_phase
from xstilts.store import PATHS_META, Store, migrated_path, relative_path


@pytest.fixture()
def finished(finished_study: Path) -> Path:
    return finished_study


@pytest.fixture()
def extend(tmp_path: Path, tiny_model: Path, mini_data: Path):  # noqa: ANN201 - a callable
    """Run the study with a second target (PAN-X) into ``out``; returns the directories its
    runs loaded phase-2 weights from."""

    def run(out: Path) -> tuple[list[Path], str]:
        config = write_experiment(
            tmp_path / f"{out.name}.toml",
            tiny_model,
            mini_data,
            out,
            settings='["sick"]',
            tasks='["xnli", "panx"]',
            languages='["en"]',
        )
        loaded: list[Path] = []

        def spy(encoder, directory: Path) -> None:  # noqa: ANN001
            loaded.append(Path(directory))
            load_encoder_weights(encoder, directory)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(target_phase, "load_encoder_weights", spy)
            result = CliRunner().invoke(app, ["run", str(config)])
        return loaded, result.output if result.exit_code == 0 else f"exit {result.exit_code}: {result.output}"

    return run


def _stored_checkpoints(out: Path) -> dict[str, str]:
    with sqlite3.connect(out / Store.FILENAME) as con:
        return dict(con.execute("SELECT run_id, checkpoint FROM runs WHERE checkpoint IS NOT NULL"))


def _phase2(out: Path) -> str:
    return next(iter(_stored_checkpoints(out)))


def test_the_store_records_checkpoints_relative_to_the_experiment(finished: Path) -> None:
    run_id = _phase2(finished)
    assert _stored_checkpoints(finished) == {run_id: f"checkpoints/{run_id}"}
    with Store(finished, readonly=True) as store:
        assert store.run(run_id)["checkpoint"] == str((finished / "checkpoints" / run_id).resolve())


def test_a_moved_experiment_extends_from_its_checkpoints(finished: Path, tmp_path: Path, extend) -> None:  # noqa: ANN001
    original = tmp_path / "A"
    shutil.copytree(finished, original)
    moved = tmp_path / "B"
    original.rename(moved)  # mv A B
    loaded, output = extend(moved)
    assert "1 run(s) done now, 2 already done" in output, output
    assert loaded == [(moved / "checkpoints" / _phase2(moved)).resolve()]


def test_a_copied_experiment_reads_its_own_checkpoints(finished: Path, tmp_path: Path, extend) -> None:  # noqa: ANN001
    original = tmp_path / "A"
    shutil.copytree(finished, original)
    copy = tmp_path / "B"
    shutil.copytree(original, copy)  # cp -r A B: A stays, with its own checkpoints
    loaded, output = extend(copy)
    assert "1 run(s) done now, 2 already done" in output, output
    assert loaded == [(copy / "checkpoints" / _phase2(copy)).resolve()]
    with sqlite3.connect(original / Store.FILENAME) as con:  # the original is untouched
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 2


def test_a_copy_without_the_checkpoint_says_so_instead_of_reading_the_original(
    finished: Path, tmp_path: Path, extend
) -> None:  # noqa: ANN001
    original = tmp_path / "A"
    shutil.copytree(finished, original)
    copy = tmp_path / "B"
    shutil.copytree(original, copy, ignore=shutil.ignore_patterns("*.safetensors"))
    loaded, output = extend(copy)
    assert output.startswith("exit 2"), output
    assert (
        f"{(copy / 'checkpoints' / _phase2(copy) / 'encoder.safetensors').resolve()}: phase-2 checkpoint is "
        "missing" in " ".join(output.split())
    ), output
    assert loaded == [(copy / "checkpoints" / _phase2(copy)).resolve()]


def _make_legacy(out: Path, absolute: Path) -> None:
    """What a store written before relative paths holds: the absolute path, no marker."""
    with sqlite3.connect(out / Store.FILENAME) as con:
        con.execute(
            "UPDATE runs SET checkpoint=? WHERE checkpoint IS NOT NULL", (str(absolute / "checkpoints" / _phase2(out)),)
        )
        con.execute("DELETE FROM meta WHERE key=?", (PATHS_META,))


def test_an_old_store_with_absolute_paths_is_rewritten_when_copied_or_moved(finished: Path, tmp_path: Path, extend) -> None:  # noqa: ANN001
    original = tmp_path / "A"
    shutil.copytree(finished, original)
    _make_legacy(original, original)
    run_id = _phase2(original)

    copy = tmp_path / "B"
    shutil.copytree(original, copy)
    with Store(copy, readonly=True) as store:  # read-only: resolved, not rewritten
        assert store.run(run_id)["checkpoint"] == str((copy / "checkpoints" / run_id).resolve())
    assert _stored_checkpoints(copy)[run_id] == str(original / "checkpoints" / run_id)
    loaded, output = extend(copy)
    assert "1 run(s) done now, 2 already done" in output, output
    assert loaded == [(copy / "checkpoints" / run_id).resolve()]  # not A's, though A is still there
    assert _stored_checkpoints(copy)[run_id] == f"checkpoints/{run_id}"

    moved = tmp_path / "C"
    original.rename(moved)  # A no longer exists
    loaded, output = extend(moved)
    assert "1 run(s) done now, 2 already done" in output, output
    assert loaded == [(moved / "checkpoints" / run_id).resolve()]
    assert _stored_checkpoints(moved)[run_id] == f"checkpoints/{run_id}"


def test_path_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exp = tmp_path / "exp"
    (exp / "checkpoints" / "int-a").mkdir(parents=True)
    # written now: inside the experiment -> relative; an external shared dir or URL -> as given
    assert relative_path(str(exp / "checkpoints" / "int-a"), exp) == "checkpoints/int-a"
    assert relative_path(str(tmp_path / "shared" / "int-a"), exp) == str(tmp_path / "shared" / "int-a")
    assert relative_path("s3://bucket/exp/int-a", exp) == "s3://bucket/exp/int-a"
    assert relative_path(None, exp) is None
    # old stores: absolute inside; relative to the working directory of the run that wrote it
    assert migrated_path(str(exp / "checkpoints" / "int-a"), exp) == "checkpoints/int-a"
    monkeypatch.chdir(tmp_path)
    assert migrated_path("exp/checkpoints/int-a", exp) == "checkpoints/int-a"
    # the experiment's own checkpoint under the same name, wherever it was written
    assert migrated_path("/gone/elsewhere/checkpoints/int-a", exp) == "checkpoints/int-a"
    # another experiment's checkpoint (it has a store): never read it, use ours even though it is missing
    other = tmp_path / "other"
    (other / "checkpoints" / "int-b").mkdir(parents=True)
    (other / Store.FILENAME).touch()
    assert migrated_path(str(other / "checkpoints" / "int-b"), exp) == "checkpoints/int-b"
    # an external shared directory stays
    (tmp_path / "shared" / "checkpoints" / "int-c").mkdir(parents=True)
    assert migrated_path(str(tmp_path / "shared" / "checkpoints" / "int-c"), exp) == str(
        tmp_path / "shared" / "checkpoints" / "int-c"
    )
    assert migrated_path("file:///shared/int-a", exp) == "file:///shared/int-a"
