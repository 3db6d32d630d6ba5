"""SNLI 1.0 jsonl reader ('-' gold labels dropped) and a short phase-2 run."""

from __future__ import annotations

from pathlib import Path

import pytest
from _task_helpers import FIXTURE_DATA, assert_phase2_ran, write

from xstilts.errors import DataError
from xstilts.tasks import get_task


def test_reads_fixture_and_drops_no_consensus_rows() -> None:
    task = get_task("snli", data_dir=FIXTURE_DATA)
    train = task.read("train", "en")
    assert len(train) == 9  # 10 lines, one with gold_label '-'
    assert "The sisters are hugging goodbye." not in {ex.text_b for ex in train}
    assert len(task.read("eval", "en")) == 3
    assert task.files("train", "en")[0].parent.name == "snli_1.0"


def test_flat_folder_and_missing_key(tmp_path: Path) -> None:
    row = '{"sentence1": "a", "sentence2": "b", "gold_label": "neutral"}\n'
    bad = '{"sentence1": "a", "gold_label": "x"}\n'
    write(tmp_path / "english" / "snli" / "snli_1.0_train.jsonl", row + bad)
    task = get_task("snli", data_dir=tmp_path)
    with pytest.raises(DataError, match="missing key 'sentence2'") as err:
        task.read("train", "en")
    assert ":2: " in err.value.one_line()


def test_phase2(phase2) -> None:
    assert_phase2_ran(phase2("snli"), "snli", ("accuracy",))
