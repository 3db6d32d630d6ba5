"""Cosmos QA csv and jsonl readers, the by-context split of valid, and phase 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from _task_helpers import FIXTURE_DATA, FIXTURES, assert_phase2_ran, write

from xstilts.errors import DataError
from xstilts.tasks import get_task
from xstilts.tasks.cosmosqa import read_cosmosqa


def test_csv_fixture_split_by_context() -> None:
    task = get_task("cosmosqa", data_dir=FIXTURE_DATA)
    train, held = task.read("train", "en"), task.read("eval", "en")
    assert len(train) + len(held) == 8 and held and train
    assert not {ex.context for ex in train} & {ex.context for ex in held}
    everything = read_cosmosqa(FIXTURE_DATA / "english" / "cosmosqa" / "valid.csv")
    assert everything[6].context.startswith('We stayed up late "talking"')  # quoted csv field
    assert everything[5].label == 2 and everything[5].choices[2] == "It rained for days ."


def test_jsonl_with_a_real_train_file() -> None:
    task = get_task("cosmosqa", {"dir": str(FIXTURES / "cosmosqa_jsonl")}, FIXTURE_DATA)
    train, valid = task.read("train", "en"), task.read("eval", "en")
    assert (len(train), len(valid)) == (6, 2)
    assert train == read_cosmosqa(FIXTURE_DATA / "english" / "cosmosqa" / "valid.csv")[:6]


def test_real_valid_split(shared_data: Path) -> None:
    task = get_task("cosmosqa", data_dir=shared_data)
    train, held = task.read("train", "en"), task.read("eval", "en")
    assert len(train) + len(held) == 2985
    assert not {ex.context for ex in train} & {ex.context for ex in held}
    assert all(len(ex.choices) == 4 and ex.question for ex in held)


def test_malformed(tmp_path: Path) -> None:
    header = "id,context,question,answer0,answer1,answer2,answer3,label\n"
    path = write(tmp_path / "valid.csv", header + "a,c,q,x,y,z,w,1\nb,c,q,x,y,z,w,7\n")
    with pytest.raises(DataError, match="label must be 0-3") as err:
        read_cosmosqa(path)
    assert f"{path}:3: " in err.value.one_line()
    with pytest.raises(DataError, match="header lacks column"):
        read_cosmosqa(write(tmp_path / "b.csv", "id,context\n1,c\n"))
    with pytest.raises(DataError, match="non-text field 'answer3'") as err:
        read_cosmosqa(write(tmp_path / "c.jsonl", '{"context": "c", "question": "q", "answer0": "a", '
                                                  '"answer1": "b", "answer2": "c", "label": 0}\n'))
    assert ":1: " in err.value.one_line()


def test_invalid_utf8_names_its_line_and_file_byte(shared_data: Path, tmp_path: Path) -> None:
    # a real CSV is decoded in chunks: the error must still say the line, and the byte in the file
    raw = bytearray((shared_data / "english" / "cosmosqa" / "valid.csv").read_bytes())
    at = raw.index(b"\n", 41000) + 5  # a few bytes into a line far past the first decoder chunk
    line = raw.count(b"\n", 0, at) + 1
    raw[at] = 0xFF
    path = tmp_path / "valid.csv"
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError) as err:
        read_cosmosqa(path)
    assert err.value.one_line() == f"{path}:{line}: invalid UTF-8 at byte {at}"
    # the line readers give the file's byte too, not the byte within the line
    jsonl = tmp_path / "valid.jsonl"
    jsonl.write_bytes(b'\n\n{"context": "\xff"}\n')
    with pytest.raises(DataError) as err:
        read_cosmosqa(jsonl)
    assert err.value.one_line() == f"{jsonl}:3: invalid UTF-8 at byte 15"


def test_phase2(phase2) -> None:
    assert_phase2_ran(phase2("cosmosqa"), "cosmosqa", ("accuracy",))
