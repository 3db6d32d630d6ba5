from __future__ import annotations

from pathlib import Path

from xstilts.tasks import get_task


def test_sick_splits(shared_data: Path) -> None:
    task = get_task("sick", data_dir=shared_data)
    train = task.load("train", "en")
    dev = task.load("eval", "en")
    assert (len(train), len(dev)) == (4439, 495)
    assert {ex.label for ex in train} == {"entailment", "neutral", "contradiction"}
