"""ANLI R1–R3 jsonl reader and a short phase-2 run."""

from __future__ import annotations

from pathlib import Path

import pytest
from _task_helpers import FIXTURE_DATA, assert_phase2_ran, write

from xstilts.errors import DataError
from xstilts.tasks import get_task
from xstilts.tasks.anli import read_anli_jsonl


def test_reads_all_rounds_from_fixtures() -> None:
    task = get_task("anli", data_dir=FIXTURE_DATA)
    train = task.read("train", "en")
    dev = task.read("eval", "en")
    assert len(train) == 24 and len(dev) == 9
    assert {ex.label for ex in train} == {"entailment", "neutral", "contradiction"}
    assert train[0].text_a == "A man is playing a guitar on stage."
    assert train[0].label == "entailment"  # 'e'
    assert [p.parent.name for p in task.files("train", "en")] == ["R1", "R2", "R3"]
    assert len(get_task("anli", {"rounds": ["R2"]}).at(FIXTURE_DATA).read("train", "en")) == 8
    assert len(get_task("anli", {"eval_file": "test.jsonl"}).at(FIXTURE_DATA).read("eval", "en")) == 9
    with pytest.raises(DataError, match="rounds"):
        get_task("anli", {"rounds": ["R4"]}).at(FIXTURE_DATA).files("train", "en")


@pytest.mark.parametrize(("line", "message"), [
    ('{"uid": "x", "premise": "p", "label": "e"}', "missing or non-text key 'hypothesis'"),
    ('{"uid": "x", "premise": "p", "hypothesis": "h", "label": "x"}', "unknown NLI label 'x'"),
    ('{"uid": "x", "premise": "p", "hypothesis": "h", "label": "e"', "invalid JSON"),
])
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    good = '{"uid": "a", "premise": "p", "hypothesis": "h", "label": "n"}\n'
    path = write(tmp_path / "train.jsonl", good + line + "\n")
    with pytest.raises(DataError, match=message) as err:
        read_anli_jsonl(path)
    assert err.value.one_line().startswith(f"{path}:2: ")


def test_phase2(phase2) -> None:
    assert_phase2_ran(phase2("anli"), "anli", ("accuracy",))
