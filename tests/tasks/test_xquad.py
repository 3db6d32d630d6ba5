"""XQuAD: the SQuAD-dev-minus-XQuAD stand-in, the removed-answers guard, and a short phase 3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xstilts.errors import DataError
from xstilts.tasks import get_task
from xstilts.tasks.xquad import standin_train

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "xtreme"


def _task(**options: object):
    return get_task("xquad", {"dir": str(FIXTURES / "xquad"), "squad_dir": str(FIXTURES / "squad"),
                              **options})


def test_metadata() -> None:
    task = get_task("xquad")
    assert task.head == "span_qa" and task.metric == "squad_f1"
    assert task.all_metrics() == ("squad_f1", "exact_match")
    assert len(task.languages) == 11 and set(task.languages_r) - set(task.languages) == {"ro"}


def test_standin_drops_xquad_paragraphs_on_fixture() -> None:
    """The Rhine paragraph is XQuAD's (its xquad.en copy differs by a trailing space): dropped."""
    task = _task()
    assert [p.name for p in task.files("train", "en")] == ["squaddev_v1.1.json", "xquad.en.json"]
    train = task.read("train", "en")
    assert [ex.id for ex in train] == ["q-curie-1", "q-eiffel-1", "q-eiffel-2"]
    de = task.read("eval", "de")
    assert de[0].answers == (("zur Nordsee", de[0].context.index("zur Nordsee")),)


def test_standin_on_the_real_files(shared_data: Path) -> None:
    """SQuAD v1.1 dev has 2,067 paragraphs; XQuAD's 240 are all found and dropped."""
    train = standin_train(shared_data / "english/squad/squaddev_v1.1.json", shared_data / "xtreme/xquad/xquad.en.json")
    assert len({ex.context for ex in train}) == 2067 - 240
    xquad = json.loads((shared_data / "xtreme/xquad/xquad.en.json").read_text(encoding="utf-8"))
    contexts = {p["context"].strip() for a in xquad["data"] for p in a["paragraphs"]}
    assert not contexts & {ex.context.strip() for ex in train}


def test_real_train_file_wins(tmp_path: Path) -> None:
    train = tmp_path / "train-v1.1.json"
    train.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [
        {"context": "Bern is the capital.", "qas": [
            {"id": "t1", "question": "What is the capital?",
             "answers": [{"text": "Bern", "answer_start": 0}]}]}]}]}),
        encoding="utf-8")
    task = _task(train_file=str(train))
    assert task.files("train", "en") == [train]
    assert [ex.id for ex in task.read("train", "en")] == ["t1"]


def test_removed_answers_are_refused() -> None:
    with pytest.raises(DataError, match=r"xquad.es.json:1: every answer is empty.*removed"):
        _task().read("eval", "es")


def _squad_file(path: Path, questions: list[dict]) -> Path:
    path.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [
        {"context": "Bern is the capital.", "qas": questions}]}]}, indent=1), encoding="utf-8")
    return path


BERN = [{"text": "Bern", "answer_start": 0}]


@pytest.mark.parametrize(("questions", "message"), [
    ([{"id": "q1", "question": "Capital?", "answers": BERN}, {"id": "q2", "question": "Which?", "answers": []}],
     "question 'q2' has no answers"),
    ([{"id": "q1", "question": "Capital?", "answers": BERN}, {"id": "q2", "question": "Which?"}],
     "question 'q2' has no answers"),
    ([{"id": "q1", "question": "Capital?", "answers": BERN}, {"id": "q1", "question": "Which?", "answers": BERN}],
     "question id 'q1' occurs twice"),
])
def test_unanswered_or_repeated_questions_are_refused(tmp_path: Path, questions: list[dict], message: str) -> None:
    """SQuAD 2.0's rule would score an unanswered question right for an empty prediction, and a
    repeated id would merge two questions' predictions: an evaluation file with either is refused."""
    _squad_file(tmp_path / "xquad.de.json", questions)
    with pytest.raises(DataError) as err:
        get_task("xquad", {"dir": str(tmp_path)}).read("eval", "de")
    line = next(i for i, text in enumerate((tmp_path / "xquad.de.json").read_text().splitlines(), 1)
                if f'"id": "{"q1" if "twice" in message else "q2"}"' in text)
    assert err.value.one_line().startswith(f"{tmp_path / 'xquad.de.json'}:{line}: {message}"), err.value.one_line()


def test_a_training_file_may_repeat_ids(tmp_path: Path) -> None:
    """XTREME's TyDiQA train file numbers its questions per article ('0' occurs 1,651 times)."""
    train = _squad_file(tmp_path / "train.json", [{"id": "0", "question": "Capital?", "answers": BERN},
                                                  {"id": "0", "question": "Which?", "answers": BERN}])
    assert len(get_task("tydiqa", {"train_file": str(train)}, data_dir=tmp_path).read("train", "en")) == 2


def test_the_shared_copy_has_gold_answers(shared_data: Path) -> None:
    """Since 2026-11-29 the shared XQuAD files carry gold answers: every question of every language
    reads, with a non-empty answer found at its offset, and ids identical across languages."""
    task = get_task("xquad", data_dir=shared_data)
    en = task.read("eval", "en")
    assert len(en) == 1190
    for language in ("de", "zh", "th"):
        examples = task.read("eval", language)
        assert [ex.id for ex in examples] == [ex.id for ex in en]
        for ex in examples:
            text, start = ex.answers[0]
            assert text and ex.context[start:start + len(text)] == text


def test_standin_needs_xquads_paragraphs(tmp_path: Path) -> None:
    other = tmp_path / "squaddev_v1.1.json"
    other.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [
        {"context": "Unrelated.", "qas": [{"id": "u", "question": "?", "answers": [
            {"text": "Unrelated", "answer_start": 0}]}]}]}]}), encoding="utf-8")
    with pytest.raises(DataError, match="1 of XQuAD's 1 paragraphs are not in this SQuAD"):
        standin_train(other, FIXTURES / "xquad" / "xquad.en.json")


def test_phase3_trains_and_scores_every_language(tmp_path: Path, tiny_model: Path) -> None:
    """Two steps of span-QA training on the stand-in, F1/EM for en and de."""
    from xstilts.config import ExperimentConfig
    from xstilts.context import RunContext
    from xstilts.phases.target import run_target
    from xstilts.plan import make_plan

    cfg = ExperimentConfig.model_validate({
        "name": "xq", "model": str(tiny_model), "data_dir": str(tmp_path),
        "output_dir": str(tmp_path / "exp"),
        "target": {"tasks": ["xquad"], "languages": ["en", "de"],
                   "train": {"lr": 1e-3, "batch_size": 2, "max_steps": 2, "eval_every": 2, "max_length": 64},
                   "task_options": {"xquad": {"dir": str(FIXTURES / "xquad"),
                                              "squad_dir": str(FIXTURES / "squad")}}},
        "runtime": {"progress": False}})
    (run,) = make_plan(cfg)
    result = run_target(run, RunContext.create(cfg, tmp_path / "exp"))
    finals = {(s.language, s.metric): s.value for s in result.scores if s.kind == "final"}
    assert set(finals) == {(lang, m) for lang in ("en", "de") for m in ("squad_f1", "exact_match")}
    assert all(0 <= v <= 100 for v in finals.values())
    assert result.train_steps == 2


def _squash_lower(text: str) -> str:
    return " ".join(text.split()).lower()


@pytest.mark.parametrize("name", ["xquad", "mlqa"])
def test_no_xquad_paragraph_or_question_reaches_training(shared_data: Path, name: str) -> None:
    """On the real files, through each task's own training-set reader (the stand-in offline): no
    XQuAD context, question id or question text is in it, compared exactly and after whitespace
    normalisation and lower-casing, so a copy differing only in spacing would be caught too."""
    task = get_task(name, data_dir=shared_data)
    assert [p.name for p in task.files("train", "en")] == ["squaddev_v1.1.json", "xquad.en.json"]
    train = task.read("train", "en")
    assert len(train) == 9376 and len({ex.context for ex in train}) == 1827
    xquad = json.loads((shared_data / "xtreme/xquad/xquad.en.json").read_text(encoding="utf-8"))
    paragraphs = [p for a in xquad["data"] for p in a["paragraphs"]]
    questions = [q for p in paragraphs for q in p["qas"]]
    assert len(paragraphs) == 240 and len(questions) == 1190
    contexts = {p["context"] for p in paragraphs}
    assert not contexts & {ex.context for ex in train}
    assert not {_squash_lower(c) for c in contexts} & {_squash_lower(ex.context) for ex in train}
    assert not {q["id"] for q in questions} & {ex.id for ex in train}
    assert not {_squash_lower(q["question"]) for q in questions} & {_squash_lower(ex.question) for ex in train}
    # the comparisons are not vacuous: SQuAD dev holds XQuAD's question ids before the exclusion
    # (all but one, 572757bef1498d1400e8f690, which XQuAD has and this SQuAD dev copy does not)
    squad = json.loads((shared_data / "english/squad/squaddev_v1.1.json").read_text(encoding="utf-8"))
    dev_ids = {q["id"] for a in squad["data"] for p in a["paragraphs"] for q in p["qas"]}
    assert len({q["id"] for q in questions} - dev_ids) == 1


def test_standin_catches_whitespace_variants_and_reused_ids(tmp_path: Path) -> None:
    """A dev paragraph that is XQuAD's up to inner whitespace is dropped; so is a question that
    keeps an XQuAD id under a different context."""
    xquad_en = tmp_path / "xquad.en.json"
    xquad_en.write_text(json.dumps({"data": [{"title": "R", "paragraphs": [
        {"context": "The Rhine  flows\nnorth.", "qas": [
            {"id": "x1", "question": "Where?", "answers": [{"text": "north", "answer_start": 18}]}]}]}]}),
        encoding="utf-8")
    dev = tmp_path / "squaddev_v1.1.json"
    dev.write_text(json.dumps({"data": [{"title": "R", "paragraphs": [
        {"context": "The Rhine flows north.", "qas": [
            {"id": "x1", "question": "Where?", "answers": [{"text": "north", "answer_start": 16}]}]},
        {"context": "The Rhine is long.", "qas": [
            {"id": "x1", "question": "How?", "answers": [{"text": "long", "answer_start": 13}]},
            {"id": "k1", "question": "What?", "answers": [{"text": "Rhine", "answer_start": 4}]}]}]}]}),
        encoding="utf-8")
    assert [ex.id for ex in standin_train(dev, xquad_en)] == ["k1"]
