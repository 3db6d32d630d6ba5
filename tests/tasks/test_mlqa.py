"""MLQA: matching-language and cross-language (G-XLT) files, SQuAD training data."""

from __future__ import annotations

from pathlib import Path

import pytest

from xstilts.errors import ConfigError
from xstilts.tasks import get_task
from xstilts.tasks.mlqa import CROSS_PAIRS, context_question

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "xtreme"


def _task(**options: object):
    return get_task("mlqa", {"dir": str(FIXTURES / "mlqa" / "MLQA_V1"), "xquad_dir": str(FIXTURES / "xquad"),
                             "squad_dir": str(FIXTURES / "squad"), **options})


def test_metadata_and_pairs() -> None:
    task = get_task("mlqa")
    assert task.head == "span_qa" and task.languages == ("ar", "de", "en", "es", "hi", "vi", "zh")
    assert len(CROSS_PAIRS) == 42 and "de-en" in CROSS_PAIRS and "de-de" not in CROSS_PAIRS
    assert context_question("de") == ("de", "de") and context_question("de-en") == ("de", "en")


def test_matching_and_cross_files() -> None:
    task = _task()
    assert task.files("eval", "de")[0].name == "dev-context-de-question-de.json"
    assert task.files("eval", "de-en")[0].name == "dev-context-de-question-en.json"
    assert task.read("eval", "de")[0].question == "Wo wurde Kaffee getrunken?"
    cross = task.read("eval", "de-en")[0]
    assert cross.question == "Where was coffee drunk?" and cross.answers[0][0] == "im Jemen"
    assert _task(split="test").files("eval", "de")[0].parts[-2:] == (
        "test", "test-context-de-question-de.json")
    with pytest.raises(ConfigError, match="split"):
        _task(split="train").files("eval", "de")


def test_training_data_is_xquads() -> None:
    train = _task().read("train", "en")
    assert [ex.id for ex in train] == ["q-curie-1", "q-eiffel-1", "q-eiffel-2"]


def test_real_dev_files_have_answers(shared_data: Path) -> None:
    task = get_task("mlqa", data_dir=shared_data)
    for lang in task.languages:
        examples = task.read("eval", lang)
        assert len(examples) >= 500 and all(ex.answers and ex.answers[0][0] for ex in examples)


def test_answers_normalised_by_context_language() -> None:
    assert _task().read("eval", "de-en")[0].answer_language == "de"
    assert _task().read("eval", "de")[0].answer_language == "de"
    assert _task(normalization="squad").read("eval", "de")[0].answer_language is None
    assert all(ex.answer_language is None for ex in _task().read("train", "en"))
    with pytest.raises(ConfigError, match="normalization"):
        _task(normalization="nfkc").read("eval", "de")
