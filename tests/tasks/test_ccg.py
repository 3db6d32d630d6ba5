"""CCG supertagging in jiant's format: label set from tags_to_id.json, reader errors, phase 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _task_helpers import FIXTURE_DATA, assert_phase2_ran, write

from xstilts.errors import DataError
from xstilts.tasks import get_task
from xstilts.tasks.ccg import read_ccg, read_tags_to_id


def test_fixture_and_label_set() -> None:
    task = get_task("ccg", data_dir=FIXTURE_DATA)
    assert task.labels == ()  # the label set is data: unknown until the task sees its folder
    files = task.files("eval", "en")  # what a feature-cache hit calls
    assert [p.name for p in files] == ["ccg.dev", "tags_to_id.json"]
    mapping = json.loads((FIXTURE_DATA / "english" / "ccg" / "tags_to_id.json").read_text())
    assert task.labels == tuple(sorted(mapping, key=mapping.get)) and len(task.labels) == 14
    train = get_task("ccg").at(FIXTURE_DATA).read("train", "en")
    assert len(train) == 6
    assert train[0].tokens[:3] == ("Pierre", "Vinken", ",")
    assert train[0].tags[5] == "(S[adj]\\NP)\\NP"
    assert len(task.read("eval", "en")) == 3


def test_malformed(tmp_path: Path) -> None:
    tags = ("N", ".")
    path = write(tmp_path / "ccg.train", "Dogs .\tN .\nCats bark .\tN .\n")
    with pytest.raises(DataError, match="3 tokens but 2 tags") as err:
        read_ccg(path, tags)
    assert f"{path}:2: " in err.value.one_line()
    with pytest.raises(DataError, match=r"tag 'S\[dcl\]' is not in tags_to_id.json"):
        read_ccg(write(tmp_path / "b", "Dogs\tS[dcl]\n"), tags)
    with pytest.raises(DataError, match="expected 'tokens<TAB>tags'"):
        read_ccg(write(tmp_path / "c", "Dogs N\n"), tags)
    with pytest.raises(DataError, match="without gaps"):
        read_tags_to_id(write(tmp_path / "t.json", '{"N": 0, ".": 2}'))
    assert read_tags_to_id(write(tmp_path / "u.json", '{".": "1", "N": "0"}')) == ("N", ".")


def test_phase2(phase2) -> None:
    assert_phase2_ran(phase2("ccg"), "ccg", ("token_accuracy",))
