"""``xstilts forget``: recover a failed or damaged run without SQL.

It lists the runs it will delete, with the target runs built on a forgotten phase-2 run, asks
(unless ``--yes``), deletes every row of those runs in one transaction and their checkpoints, and
the next ``xstilts run`` recomputes exactly them. A name that matches nothing is one line, exit 2.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from _reliability import store_invariants, write_experiment
from typer.testing import CliRunner

from xstilts.cli import app
from xstilts.store import Store

TABLES = ("runs", "scores", "example_stats", "curve_stats", "later_table")


@pytest.fixture()
def exp(finished_study: Path, tmp_path: Path) -> Path:
    """A copy of the finished study, plus a table added by a later version (it has a run_id column)."""
    out = tmp_path / "exp"
    shutil.copytree(finished_study, out)
    with sqlite3.connect(out / Store.FILENAME) as con:
        con.execute("CREATE TABLE later_table (run_id TEXT NOT NULL, note TEXT)")
        con.executemany("INSERT INTO later_table SELECT run_id, 'x' FROM runs", [()])
    return out


def _ids(out: Path) -> tuple[str, str]:
    with sqlite3.connect(out / Store.FILENAME) as con:
        phase2 = con.execute("SELECT run_id FROM runs WHERE phase='intermediate'").fetchone()[0]
        target = con.execute("SELECT run_id FROM runs WHERE phase='target'").fetchone()[0]
    return phase2, target


def _rows(out: Path) -> dict[str, set[str]]:
    """Which runs each table has rows of."""
    with sqlite3.connect(out / Store.FILENAME) as con:
        return {t: {r for (r,) in con.execute(f"SELECT DISTINCT run_id FROM {t}")} for t in TABLES}


def _forget(out: Path, *args: str, answer: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["forget", str(out), *args], input=answer)
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def _rerun(out: Path, tmp_path: Path, tiny_model: Path, mini_data: Path) -> str:
    config = write_experiment(
        tmp_path / "again.toml", tiny_model, mini_data, out, settings='["sick"]', tasks='["xnli"]', languages='["en"]'
    )
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_forgetting_a_phase2_run_takes_its_targets_and_checkpoint_and_run_recomputes_them(
    exp: Path, tmp_path: Path, tiny_model: Path, mini_data: Path
) -> None:
    phase2, target = _ids(exp)
    assert all(rows == {phase2, target} for table, rows in _rows(exp).items() if table not in ("curve_stats",))
    code, output = _forget(exp, phase2, "--yes")
    assert code == 0, output
    listing = output.splitlines()
    assert "forgetting 1 run(s) and 1 target run(s) built on them" in listing[0]
    assert listing[1].strip().startswith(f"{phase2} (intermediate, done")
    assert listing[2].strip().startswith(f"{target} (target, done, starts from {phase2}")
    assert _rows(exp) == {t: set() for t in TABLES}  # every table, also one this version does not know
    assert not (exp / "checkpoints" / phase2).exists()
    store_invariants(exp)
    assert "2 run(s) done now, 0 already done" in _rerun(exp, tmp_path, tiny_model, mini_data)


def test_a_pattern_forgets_only_what_it_matches(exp: Path, tmp_path: Path, tiny_model: Path, mini_data: Path) -> None:
    phase2, target = _ids(exp)
    code, output = _forget(exp, "tgt-sick-*", "--yes")
    assert code == 0, output
    assert "forgetting 1 run(s):" in output and "built on them" not in output
    assert _rows(exp)["runs"] == {phase2}
    assert (exp / "checkpoints" / phase2 / "encoder.safetensors").is_file()  # the phase-2 run stays
    assert "1 run(s) done now, 1 already done" in _rerun(exp, tmp_path, tiny_model, mini_data)


def test_it_asks_first_and_no_means_nothing_changes(exp: Path) -> None:
    phase2, target = _ids(exp)
    before = _rows(exp)
    for answer in ("n\n", ""):  # no, and no answer at all (end of input)
        code, output = _forget(exp, phase2, answer=answer)
        assert code == 1 and "error: nothing forgotten" in output, output
        assert _rows(exp) == before
        assert (exp / "checkpoints" / phase2 / "encoder.safetensors").is_file()
    code, output = _forget(exp, phase2, answer="y\n")
    assert code == 0, output
    assert _rows(exp)["runs"] == set()


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("TYPO", "no run 'TYPO' in this store; did you mean PHASE2?"),  # the phase-2 id, its hash mistyped
        ("xyz", "no run 'xyz' in this store (it has 2 runs)"),
        ("tgt-none-*", "no run 'tgt-none-*' in this store"),
    ],
)
def test_an_unknown_run_is_one_line_and_nothing_is_forgotten(exp: Path, name: str, fragment: str) -> None:
    phase2, _ = _ids(exp)
    typo = phase2[:-3] + "zzz"
    name, fragment = name.replace("TYPO", typo), fragment.replace("TYPO", typo).replace("PHASE2", phase2)
    before = _rows(exp)
    code, output = _forget(exp, phase2, name, "--yes")  # one good name does not carry a bad one
    assert code == 2
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{exp / Store.FILENAME}: {fragment}" in errors[0], output
    assert _rows(exp) == before


def test_no_store_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    code, output = _forget(tmp_path / "nothing-here", "int-x", "--yes")
    assert code == 2 and "no results store here" in output, output
    assert not (tmp_path / "nothing-here").exists()


def test_forgetting_is_all_or_nothing(exp: Path) -> None:
    """A delete that fails half-way (here a trigger refuses it) leaves every row and every checkpoint."""
    phase2, _ = _ids(exp)
    with sqlite3.connect(exp / Store.FILENAME) as con:
        con.execute("CREATE TRIGGER refuse BEFORE DELETE ON example_stats BEGIN SELECT RAISE(ABORT, 'refused'); END")
    before = _rows(exp)
    code, output = _forget(exp, phase2, "--yes")
    assert code == 2 and "refused" in output, output
    assert _rows(exp) == before
    assert (exp / "checkpoints" / phase2 / "encoder.safetensors").is_file()
