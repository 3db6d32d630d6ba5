from __future__ import annotations

from pathlib import Path

from xstilts.tasks import get_task


def test_sick_splits(shared_data: Path) -> None:
    task = get_task("sick")
    train = task.load("train", "en", shared_data)
    dev = task.load("eval", "en", shared_data)
    assert (len(train), len(dev)) == (4439, 495)
    assert {ex.label for ex in train} == {"entailment", "neutral", "contradiction"}
