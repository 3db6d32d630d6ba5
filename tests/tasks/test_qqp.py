"""QQP (GLUE tsv): broken rows skipped with a counted warning, other errors named by line."""

from __future__ import annotations

from pathlib import Path

import pytest
from _task_helpers import FIXTURE_DATA, assert_phase2_ran, write

from xstilts.errors import DataError
from xstilts.tasks import get_task
from xstilts.tasks.qqp import read_qqp

HEADER = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"


def test_fixture_skips_the_split_row_with_a_warning() -> None:
    task = get_task("qqp", data_dir=FIXTURE_DATA)
    with pytest.warns(UserWarning, match="skipped 2 malformed row"):
        train = task.read("train", "en")
    assert len(train) == 8
    assert train[0].text_a == "How do I learn Python quickly?" and train[0].label == "duplicate"
    assert {ex.label for ex in train} == {"duplicate", "not_duplicate"}
    examples, skipped = read_qqp(FIXTURE_DATA / "english" / "qqp" / "dev.tsv")
    assert (len(examples), skipped) == (4, 0)


def test_errors(tmp_path: Path) -> None:
    bad_header = write(tmp_path / "a.tsv", "id\tq1\tq2\n")
    with pytest.raises(DataError, match="not a GLUE QQP header") as err:
        read_qqp(bad_header)
    assert f"{bad_header}:1: " in err.value.one_line()
    bad_label = write(tmp_path / "b.tsv", HEADER + "1\t1\t2\tq a?\tq b?\t0\n2\t3\t4\tq c?\tq d?\tyes\n")
    with pytest.raises(DataError, match="is_duplicate must be 0 or 1") as err:
        read_qqp(bad_label)
    assert f"{bad_label}:3: " in err.value.one_line()
    mostly_broken = write(tmp_path / "c.tsv", HEADER + "1\t1\t2\tq a?\tq b?\t0\n" + "x\ty\n" * 5)
    with pytest.raises(DataError, match="5 of 6 rows are malformed"):
        read_qqp(mostly_broken)


def test_phase2(phase2) -> None:
    with pytest.warns(UserWarning):
        result = phase2("qqp")
    assert_phase2_ran(result, "qqp", ("accuracy",))
