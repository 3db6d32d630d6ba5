"""MNLI (GLUE tsv) on fixtures, as one of the nine intermediate tasks."""

from __future__ import annotations

from _task_helpers import FIXTURE_DATA, assert_phase2_ran

from xstilts.tasks import get_task


def test_reads_glue_tsv_fixture() -> None:
    task = get_task("mnli", data_dir=FIXTURE_DATA)
    assert len(task.read("train", "en")) == 12
    dev = task.read("eval", "en")
    assert len(dev) == 5  # one of six rows has gold label '-'


def test_phase2(phase2) -> None:
    assert_phase2_ran(phase2("mnli"), "mnli", ("accuracy",))
