"""SQuAD v1.1 / v2.0 readers, the held-out-articles stand-in, and short phase-2 runs.

(Named ``test_squad_tasks`` because ``tests/metrics/test_squad.py`` has the metric's tests.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _task_helpers import FIXTURE_DATA, assert_phase2_ran, write

from xstilts.errors import DataError
from xstilts.tasks import get_task
from xstilts.tasks.squad import read_squad, read_squad_articles


def test_fixture_v11_is_split_by_article() -> None:
    task = get_task("squad", data_dir=FIXTURE_DATA)
    assert task.train_source() == "dev-split"
    train, held = task.read("train", "en"), task.read("eval", "en")
    assert (len(train), len(held)) == (9, 3)  # 4 articles x 3 questions; 1 article held out
    assert not {ex.context for ex in train} & {ex.context for ex in held}
    everything = read_squad(FIXTURE_DATA / "english" / "squad" / "squaddev_v1.1.json")
    assert sorted(ex.id for ex in train + held) == sorted(ex.id for ex in everything)
    first = everything[0]
    assert first.answers[0] == ("Denver Broncos", first.context.index("Denver Broncos"))
    assert len(first.answers) == 3  # duplicates kept: they are separate gold answers


def test_real_dev_split_has_unseen_articles(shared_data: Path) -> None:
    task = get_task("squad", data_dir=shared_data)
    train, held = task.read("train", "en"), task.read("eval", "en")
    assert len(train) + len(held) == 10565  # every question of the real dev file
    assert not {ex.context for ex in train} & {ex.context for ex in held}
    assert all(ex.context[s: s + len(t)] == t for ex in held for t, s in ex.answers)
    articles = read_squad_articles(shared_data / "english" / "squad" / "squaddev_v1.1.json")
    assert len(articles) == 48


def test_train_file_when_present(tmp_path: Path) -> None:
    src = FIXTURE_DATA / "english" / "squad" / "squaddev_v1.1.json"
    folder = tmp_path / "english" / "squad"
    write(folder / "train-v1.1.json", src.read_text(encoding="utf-8"))
    write(folder / "dev-v1.1.json", src.read_text(encoding="utf-8"))
    task = get_task("squad", data_dir=tmp_path)
    assert task.train_source() == "train-file"
    assert len(task.read("train", "en")) == len(task.read("eval", "en")) == 12
    with pytest.raises(DataError, match="train_source"):
        get_task("squad", {"train_source": "nope"}).at(tmp_path).read("train", "en")


def test_v2_unanswerable_questions() -> None:
    task = get_task("squad_v2", data_dir=FIXTURE_DATA)
    assert task.unanswerable and task.metrics == ("squad_f1", "exact_match")
    examples = read_squad(FIXTURE_DATA / "english" / "squad" / "dev-v2.0.json")
    impossible = [ex for ex in examples if not ex.answers]
    assert len(examples) == 16 and len(impossible) == 4  # plausible_answers are not answers
    train, held = task.read("train", "en"), task.read("eval", "en")
    assert len(train) + len(held) == 16


def test_malformed_json_names_the_line(tmp_path: Path) -> None:
    doc = {"data": [{"title": "T", "paragraphs": [{"context": "Alpha beta gamma.", "qas": [
        {"id": "q-ok", "question": "What?", "answers": [{"text": "beta", "answer_start": 6}]},
        {"id": "q-bad", "question": "What?", "answers": [{"text": "delta", "answer_start": 0}]}]}]}]}
    path = write(tmp_path / "bad.json", json.dumps(doc, indent=1))
    with pytest.raises(DataError, match="'q-bad': answer 'delta' does not occur") as err:
        read_squad(path)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if '"id": "q-bad"' in text)
    assert err.value.one_line().startswith(f"{path}:{line}: ")
    # a start that is off is moved to the nearest occurrence, as long as the text occurs
    doc["data"][0]["paragraphs"][0]["qas"][1]["answers"][0] = {"text": "gamma", "answer_start": 3}
    (ex,) = read_squad(write(tmp_path / "ok.json", json.dumps(doc)))[1:]
    assert ex.answers == (("gamma", 11),)
    with pytest.raises(DataError, match="expected an object with a 'data' list"):
        read_squad(write(tmp_path / "x.json", "[1, 2]"))
    with pytest.raises(DataError, match="invalid JSON") as err:
        read_squad(write(tmp_path / "y.json", '{"data": [\n  {"title": }\n]}'))
    assert ":2: " in err.value.one_line()


def test_phase2_v1(phase2) -> None:
    assert_phase2_ran(phase2("squad"), "squad", ("squad_f1", "exact_match"))


def test_phase2_v2(phase2) -> None:
    assert_phase2_ran(phase2("squad_v2"), "squad_v2", ("squad_f1", "exact_match"))
