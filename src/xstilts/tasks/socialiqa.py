"""Social IQa: 3-way multiple-choice questions about social situations (not one of the nine;
CC BY 4.0).

Files ``english/socialiqa/socialIQa_v1.4_{trn,dev,tst}.jsonl`` (folder option ``dir``):
``context``, ``question``, ``answerA``–``answerC`` and ``correct`` (``A``/``B``/``C``). An example
is ``context`` as the first segment and ``question + " " + answer`` as the second.

**Offline stand-in.** The training file is not available; dev (1,954) and tst (2,224) are, both
with labels. When ``trn`` is missing we train on ``tst`` and evaluate on ``dev``: a fixed,
disjoint split. (Option ``train_file`` names another file.)
"""

from __future__ import annotations

from pathlib import Path

from xstilts.errors import DataError
from xstilts.tasks.base import MultipleChoiceExample, Task
from xstilts.tasks.formats import read_jsonl
from xstilts.tasks.registry import register

KEYS = ("context", "question", "answerA", "answerB", "answerC")


def read_socialiqa(path: Path) -> list[MultipleChoiceExample]:
    out: list[MultipleChoiceExample] = []
    for lineno, obj in read_jsonl(path):
        for key in KEYS:
            if not isinstance(obj.get(key), str):
                raise DataError(f"missing or non-text key {key!r}", path, lineno)
        correct = obj.get("correct")
        if correct not in ("A", "B", "C"):
            raise DataError(f"'correct' must be A, B or C, found {correct!r}", path, lineno)
        answers = (obj["answerA"], obj["answerB"], obj["answerC"])
        out.append(MultipleChoiceExample(obj["context"], obj["question"], answers, "ABC".index(correct)))
    return out


@register
class SocialIQA(Task):
    name = "socialiqa"
    head = "multiple_choice"
    options_read = ("dir", "train_file", "eval_file")
    metric = "accuracy"
    chance = 100 / 3
    description = "Social IQa (accuracy on dev); offline: trained on the labelled tst file"

    def files(self, split: str, language: str) -> list[Path]:
        folder = self.option_path("dir", "english/socialiqa")
        if split != "train":
            return [folder / self.options.get("eval_file", "socialIQa_v1.4_dev.jsonl")]
        if "train_file" in self.options:
            return [folder / self.options["train_file"]]
        trn = folder / "socialIQa_v1.4_trn.jsonl"
        return [trn if trn.is_file() else folder / "socialIQa_v1.4_tst.jsonl"]

    def read(self, split: str, language: str) -> list[MultipleChoiceExample]:
        (path,) = self.files(split, language)
        return read_socialiqa(path)
