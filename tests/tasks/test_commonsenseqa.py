"""CommonsenseQA jsonl reader (fixtures and real files) and phase 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _task_helpers import FIXTURE_DATA, assert_phase2_ran, write

from xstilts.errors import DataError
from xstilts.tasks import get_task
from xstilts.tasks.commonsenseqa import read_commonsenseqa


def test_fixture() -> None:
    task = get_task("commonsenseqa", data_dir=FIXTURE_DATA)
    train = task.read("train", "en")
    assert len(train) == 6 and len(task.read("eval", "en")) == 4
    ex = train[3]
    assert ex.context.startswith("Where do you put your grapes") and ex.question is None
    assert ex.choices[ex.label] == "grocery cart"  # answerKey B


def test_real_files(shared_data: Path) -> None:
    task = get_task("commonsenseqa", data_dir=shared_data)
    train, dev = task.read("train", "en"), task.read("eval", "en")
    assert (len(train), len(dev)) == (9741, 1221)
    assert all(len(ex.choices) == 5 for ex in dev)
    assert {ex.label for ex in dev} == {0, 1, 2, 3, 4}


def test_malformed(tmp_path: Path) -> None:
    good = {"answerKey": "A", "id": "1", "question": {"stem": "Q?", "choices": [
        {"label": "A", "text": "x"}, {"label": "B", "text": "y"}]}}
    test_split = {"id": "2", "question": good["question"]}
    path = write(tmp_path / "c.jsonl", json.dumps(good) + "\n" + json.dumps(test_split) + "\n")
    with pytest.raises(DataError, match="answerKey None is not one of the choice labels A, B") as err:
        read_commonsenseqa(path)
    assert f"{path}:2: " in err.value.one_line()
    no_choices = {"answerKey": "A", "question": {"stem": "Q?", "choices": [{"label": "A"}]}}
    with pytest.raises(DataError, match="choices"):
        read_commonsenseqa(write(tmp_path / "d.jsonl", json.dumps(no_choices) + "\n"))


def test_phase2(phase2) -> None:
    assert_phase2_ran(phase2("commonsenseqa"), "commonsenseqa", ("accuracy",))
