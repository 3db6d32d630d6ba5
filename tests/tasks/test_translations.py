"""Translated intermediate data: per-language files trained together as one task."""

from __future__ import annotations

from pathlib import Path

import pytest
from _task_helpers import FIXTURE_DATA, assert_phase2_ran, write

from xstilts.errors import ConfigError
from xstilts.tasks.translations import translation_variants

GERMAN_SST2 = ("sentence\tlabel\nein wunderbarer Film .\t1\nlangweilig und zu lang .\t0\n"
               "sehr gut gespielt .\t1\n")


def test_variants_read_each_language_with_the_tasks_reader(tmp_path: Path) -> None:
    de = write(tmp_path / "sst2-de.tsv", GERMAN_SST2)
    variants = translation_variants("sst2", {"translations": {"de": str(de)}}, FIXTURE_DATA)
    assert [lang for lang, _ in variants] == ["en", "de"]
    english, german = (task.at(FIXTURE_DATA).read("train", lang) for lang, task in variants)
    assert len(english) == 10 and [ex.text_a for ex in german][0] == "ein wunderbarer Film ."
    options = {"translations": {"de": str(de)}, "translations_only": True}
    only = translation_variants("sst2", options, FIXTURE_DATA)
    assert [lang for lang, _ in only] == ["de"]
    # relative paths are looked up under the data directory
    rel = translation_variants("sst2", {"translations": {"xx": "english/sst2/dev.tsv"}}, FIXTURE_DATA)
    assert len(rel[1][1].at(FIXTURE_DATA).read("train", "xx")) == 6


def test_tasks_without_a_train_file_option_refuse(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read translations"):
        translation_variants("anli", {"translations": {"de": str(tmp_path / "x.jsonl")}}, FIXTURE_DATA)
    with pytest.raises(ConfigError, match="must be a table"):
        translation_variants("sst2", {"translations": ["de.tsv"]}, FIXTURE_DATA)
    with pytest.raises(ConfigError, match="translations_only needs"):
        translation_variants("sst2", {"translations_only": True}, FIXTURE_DATA)


def test_phase2_trains_english_and_translation_as_one_task(phase2, tmp_path: Path, monkeypatch) -> None:
    import xstilts.phases.intermediate as phase

    seen = {}
    real_train = phase.train

    def spy(encoder, jobs, *args, **kwargs):
        seen["jobs"] = [(j.name, len(j.features)) for j in jobs]
        return real_train(encoder, jobs, *args, **kwargs)

    monkeypatch.setattr(phase, "train", spy)
    de = write(tmp_path / "sst2-de.tsv", GERMAN_SST2)
    result = phase2("sst2", task_options={"sst2": {"translations": {"de": str(de)}}})
    assert_phase2_ran(result, "sst2", ("accuracy",))
    assert seen["jobs"] == [("sst2", 10 + 3)]  # one job, English and German pooled
