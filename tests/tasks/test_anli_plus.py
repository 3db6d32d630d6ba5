"""ANLI+ = ANLI + MNLI + SNLI as one task with one head."""

from __future__ import annotations

import pytest
from _task_helpers import FIXTURE_DATA, assert_phase2_ran

from xstilts.errors import DataError
from xstilts.tasks import get_task


def test_union_of_training_sets_and_anli_dev() -> None:
    task = get_task("anli_plus", data_dir=FIXTURE_DATA)
    train = task.read("train", "en")
    parts = {name: get_task(name).at(FIXTURE_DATA).read("train", "en") for name in ("anli", "mnli", "snli")}
    assert len(train) == sum(len(p) for p in parts.values()) == 24 + 12 + 9
    assert sorted(map(repr, train)) == sorted(repr(ex) for p in parts.values() for ex in p)
    assert task.read("eval", "en") == get_task("anli").at(FIXTURE_DATA).read("eval", "en")
    names = {p.name for p in task.files("train", "en")}
    assert names == {"train.jsonl", "train.tsv", "snli_1.0_train.jsonl"}
    # shuffled once with a fixed seed: a cap keeps more than the first component
    first = set(map(repr, train[:12]))
    assert first - set(map(repr, parts["anli"])) and first & set(map(repr, parts["anli"]))
    assert train == get_task("anli_plus").at(FIXTURE_DATA).read("train", "en")


def test_components_option() -> None:
    no_mnli = get_task("anli_plus", {"components": ["anli", "snli"], "anli": {"rounds": ["R1"]}})
    assert len(no_mnli.at(FIXTURE_DATA).read("train", "en")) == 8 + 9
    with pytest.raises(DataError, match="must include 'anli'"):
        get_task("anli_plus", {"components": ["mnli"]}).at(FIXTURE_DATA).read("train", "en")


def test_phase2(phase2) -> None:
    assert_phase2_ran(phase2("anli_plus"), "anli_plus", ("accuracy",))
