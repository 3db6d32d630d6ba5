"""HellaSwag jsonl reader, the by-source split of the partial train file, and phase 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _task_helpers import FIXTURE_DATA, assert_phase2_ran, write

from xstilts.errors import DataError
from xstilts.tasks import get_task
from xstilts.tasks.hellaswag import read_hellaswag


def _sources(path: Path) -> dict[str, str]:
    """Source id of each example (by its full content) as the reader saw it."""
    return {repr(ex): source for source, ex in read_hellaswag(path)}


def test_fixture_split_by_source() -> None:
    task = get_task("hellaswag", data_dir=FIXTURE_DATA)
    train, held = task.read("train", "en"), task.read("eval", "en")
    assert len(train) + len(held) == 10 and held
    src = _sources(FIXTURE_DATA / "english" / "hellaswag" / "hellaswag_train.jsonl")
    assert not {src[repr(ex)] for ex in train} & {src[repr(ex)] for ex in held}
    first = read_hellaswag(FIXTURE_DATA / "english" / "hellaswag" / "hellaswag_train.jsonl")[0][1]
    assert first.question == "then" and first.label == 3 and len(first.choices) == 4
    rows = read_hellaswag(FIXTURE_DATA / "english" / "hellaswag" / "hellaswag_train.jsonl")
    empty_b = [ex for _, ex in rows if ex.context.startswith("The dog shakes")]
    assert empty_b[0].question is None


def test_real_partial_train_split(shared_data: Path) -> None:
    task = get_task("hellaswag", data_dir=shared_data)
    train, held = task.read("train", "en"), task.read("eval", "en")
    assert len(train) + len(held) == 3368
    assert 0.1 < len(held) / 3368 < 0.3
    src = _sources(shared_data / "english" / "hellaswag" / "hellaswag_train.jsonl")
    assert not {src[repr(ex)] for ex in train} & {src[repr(ex)] for ex in held}


def test_real_validation_file_is_used_when_present(tmp_path: Path) -> None:
    text = (FIXTURE_DATA / "english" / "hellaswag" / "hellaswag_train.jsonl").read_text()
    write(tmp_path / "english" / "hellaswag" / "hellaswag_train.jsonl", text)
    write(tmp_path / "english" / "hellaswag" / "hellaswag_val.jsonl", "\n".join(text.splitlines()[:3]) + "\n")
    task = get_task("hellaswag", data_dir=tmp_path)
    assert len(task.read("train", "en")) == 10
    assert len(task.read("eval", "en")) == 3


@pytest.mark.parametrize(("row", "message"), [
    ({"ctx_a": "a", "ctx_b": "b", "endings": ["x", "y"], "label": 2}, "ending index 0-1"),
    ({"ctx_a": "a", "ctx_b": "b", "endings": "xy", "label": 0}, "'endings' must be a list"),
    ({"ctx_a": "a", "endings": ["x", "y"], "label": 0}, "key 'ctx_b'"),
    ({"ctx_a": "a", "ctx_b": "", "endings": ["x", "y"]}, "found None"),  # test split: no label
])
def test_malformed(tmp_path: Path, row: dict, message: str) -> None:
    ok = {"ctx_a": "a", "ctx_b": "b", "endings": ["x", "y"], "label": "1"}
    path = write(tmp_path / "h.jsonl", json.dumps(ok) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=message) as err:
        read_hellaswag(path)
    assert f"{path}:2: " in err.value.one_line()


def test_phase2(phase2) -> None:
    assert_phase2_ran(phase2("hellaswag"), "hellaswag", ("accuracy",))
