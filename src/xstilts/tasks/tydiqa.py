"""TyDiQA-GoldP: typologically diverse extractive QA, gold passage given (9 languages).

Files as XTREME's preprocessing writes them: ``xtreme/tydiqa/tydiqa-goldp-v1.1-train/
tydiqa.goldp.en.train.json`` (the English training set, 3,696 questions) and
``tydiqa-goldp-v1.1-dev/tydiqa.goldp.{lang}.dev.json``; SQuAD v1.1 JSON. Option ``dir``
overrides the ``tydiqa`` folder, ``train_file`` the training file.

Dev files whose answers were removed (every answer ``""`` at 0, as XTREME's mirror distributed them
before the gold files arrived) are a DataError that says so (see :func:`xstilts.tasks.xquad.check_answers`).
"""

from __future__ import annotations

from pathlib import Path

from xstilts.tasks.base import SpanQAExample, Task
from xstilts.tasks.registry import register
from xstilts.tasks.xquad import read_labelled_squad

LANGUAGES = ("ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te")


@register
class TyDiQA(Task):
    name = "tydiqa"
    head = "span_qa"
    options_read = ("dir", "train_file")
    metric = "squad_f1"
    metrics = ("squad_f1", "exact_match")
    xtreme_metrics = ("squad_f1", "exact_match")  # the leaderboard's (EM + F1) / 2
    languages = LANGUAGES
    description = "TyDiQA-GoldP (F1/EM); English train = tydiqa.goldp.en.train.json"

    def files(self, split: str, language: str) -> list[Path]:
        folder = self.option_path("dir", "xtreme/tydiqa")
        if split == "train":
            default = folder / "tydiqa-goldp-v1.1-train" / "tydiqa.goldp.en.train.json"
            return [Path(self.options.get("train_file", default))]
        return [folder / "tydiqa-goldp-v1.1-dev" / f"tydiqa.goldp.{language}.dev.json"]

    def read(self, split: str, language: str) -> list[SpanQAExample]:
        return read_labelled_squad(self.files(split, language)[0], scored=split != "train")
