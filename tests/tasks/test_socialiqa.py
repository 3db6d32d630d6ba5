"""Social IQa jsonl reader (fixtures and real files) and phase 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from _task_helpers import FIXTURE_DATA, assert_phase2_ran, write

from xstilts.errors import DataError
from xstilts.tasks import get_task
from xstilts.tasks.socialiqa import read_socialiqa


def test_fixture_trains_on_tst_and_evaluates_on_dev() -> None:
    task = get_task("socialiqa", data_dir=FIXTURE_DATA)
    assert task.files("train", "en")[0].name == "socialIQa_v1.4_tst.jsonl"
    train, dev = task.read("train", "en"), task.read("eval", "en")
    assert (len(train), len(dev)) == (6, 4)
    assert dev[0].choices[dev[0].label] == "Find somewhere to go"  # correct = C


def test_real_files(shared_data: Path) -> None:
    task = get_task("socialiqa", data_dir=shared_data)
    train, dev = task.read("train", "en"), task.read("eval", "en")
    assert (len(train), len(dev)) == (2224, 1954)
    assert not {(ex.context, ex.question) for ex in train} & {(ex.context, ex.question) for ex in dev}


def test_malformed(tmp_path: Path) -> None:
    row = ('{"context": "c", "question": "q", "answerA": "a", "answerB": "b", "answerC": "c", '
           '"correct": "%s"}\n')
    path = write(tmp_path / "s.jsonl", row % "A" + row % "D")
    with pytest.raises(DataError, match="'correct' must be A, B or C, found 'D'") as err:
        read_socialiqa(path)
    assert f"{path}:2: " in err.value.one_line()


def test_phase2(phase2) -> None:
    assert_phase2_ran(phase2("socialiqa"), "socialiqa", ("accuracy",))
