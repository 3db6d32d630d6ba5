"""TyDiQA-GoldP: file layout, the English training set, the removed-answers guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from xstilts.errors import DataError
from xstilts.tasks import get_task

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "xtreme"
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def test_metadata() -> None:
    task = get_task("tydiqa")
    assert task.head == "span_qa" and task.all_metrics() == ("squad_f1", "exact_match")
    assert task.languages == ("ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te")


def test_fixture_layout() -> None:
    task = get_task("tydiqa", {"dir": str(FIXTURES / "tydiqa")})
    (train,) = task.read("train", "en", Path("/x"))
    assert train.answers == (("Nairobi", 0),)
    (sw,) = task.read("eval", "sw", Path("/x"))
    assert sw.id == "swahili-1" and sw.answers[0][0] == "Nairobi"


def test_real_train_and_unlabelled_dev() -> None:
    task = get_task("tydiqa")
    train = task.read("train", "en", SHARED)
    assert len(train) == 3696 and all(ex.answers[0][0] for ex in train)
    with pytest.raises(DataError, match=r"tydiqa.goldp.sw.dev.json:1: every answer is empty"):
        task.read("eval", "sw", SHARED)
