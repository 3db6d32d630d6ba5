"""TyDiQA-GoldP: file layout, the English training set, the gold dev files, the removed-answers guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xstilts.errors import DataError
from xstilts.tasks import get_task

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "xtreme"


def test_metadata() -> None:
    task = get_task("tydiqa")
    assert task.head == "span_qa" and task.all_metrics() == ("squad_f1", "exact_match")
    assert task.languages == ("ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te")


def test_fixture_layout() -> None:
    task = get_task("tydiqa", {"dir": str(FIXTURES / "tydiqa")})
    (train,) = task.read("train", "en")
    assert train.answers == (("Nairobi", 0),)
    (sw,) = task.read("eval", "sw")
    assert sw.id == "swahili-1" and sw.answers[0][0] == "Nairobi"


def test_real_train_and_gold_dev(shared_data: Path) -> None:
    """The shared dev files carry gold answers since 2026-11-29 (the counts of its README)."""
    task = get_task("tydiqa", data_dir=shared_data)
    train = task.read("train", "en")
    assert len(train) == 3696 and all(ex.answers[0][0] for ex in train)
    counts = {"ar": 921, "bn": 113, "en": 440, "fi": 782, "id": 565, "ko": 276, "ru": 812, "sw": 499, "te": 669}
    for language, n in counts.items():
        dev = task.read("eval", language)
        assert len(dev) == n
        assert all(text and ex.context[start:start + len(text)] == text for ex in dev for text, start in ex.answers)


def test_removed_answers_are_still_refused(tmp_path: Path) -> None:
    """A copy with blanked answers (as XTREME's mirror distributed it) is refused, not scored as 0."""
    folder = tmp_path / "tydiqa-goldp-v1.1-dev"
    folder.mkdir()
    paragraph = {"context": "Nairobi ni mji mkuu.", "qas": [
        {"id": "swahili-1", "question": "Mji mkuu?", "answers": [{"text": "", "answer_start": 0}]}]}
    (folder / "tydiqa.goldp.sw.dev.json").write_text(json.dumps({"data": [{"paragraphs": [paragraph]}]}), encoding="utf-8")
    with pytest.raises(DataError, match=r"tydiqa.goldp.sw.dev.json:1: every answer is empty"):
        get_task("tydiqa", {"dir": str(tmp_path)}).at(tmp_path).read("eval", "sw")
