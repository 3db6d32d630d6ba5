"""SST-2 (GLUE tsv) on fixtures and on the real files."""

from __future__ import annotations

from pathlib import Path

import pytest
from _task_helpers import FIXTURE_DATA, assert_phase2_ran, write

from xstilts.errors import DataError
from xstilts.tasks import get_task
from xstilts.tasks.sst2 import read_sst2


def test_fixture() -> None:
    task = get_task("sst2", data_dir=FIXTURE_DATA)
    train = task.read("train", "en")
    assert len(train) == 10 and len(task.read("eval", "en")) == 6
    assert train[0].text_a == "it 's a charming and often affecting journey ."
    assert train[0].text_b is None and train[0].label == "positive"
    assert train[1].label == "negative"


def test_real_files(shared_data: Path) -> None:
    task = get_task("sst2", data_dir=shared_data)
    train, dev = task.read("train", "en"), task.read("eval", "en")
    assert (len(train), len(dev)) == (67349, 872)
    assert {ex.label for ex in dev} == {"negative", "positive"}


def test_bad_label_and_header(tmp_path: Path) -> None:
    path = write(tmp_path / "dev.tsv", "sentence\tlabel\ngood .\t1\nbad .\t2\n")
    with pytest.raises(DataError, match="label must be 0 or 1") as err:
        read_sst2(path)
    assert f"{path}:3: " in err.value.one_line()
    with pytest.raises(DataError, match="header lacks column"):
        read_sst2(write(tmp_path / "x.tsv", "text\tlabel\na\t1\n"))


def test_phase2(phase2) -> None:
    assert_phase2_ran(phase2("sst2"), "sst2", ("accuracy",))
