"""CommonsenseQA: 5-way multiple-choice questions about everyday concepts.

Files ``english/commonsenseqa/train_rand_split.jsonl`` and ``dev_rand_split.jsonl`` (folder
option ``dir``): ``answerKey``, ``id`` and ``question`` with ``stem`` and ``choices``
(``[{label, text}]``). The stem is the first segment and each choice text the second; the label is
the position of ``answerKey`` among the choice labels. The test split has no ``answerKey`` and is
rejected.
"""

from __future__ import annotations

from pathlib import Path

from xstilts.errors import DataError
from xstilts.tasks.base import MultipleChoiceExample, Task
from xstilts.tasks.formats import read_jsonl
from xstilts.tasks.registry import register


def read_commonsenseqa(path: Path) -> list[MultipleChoiceExample]:
    out: list[MultipleChoiceExample] = []
    for lineno, obj in read_jsonl(path):
        question = obj.get("question")
        if not isinstance(question, dict) or not isinstance(question.get("stem"), str):
            raise DataError("missing 'question.stem'", path, lineno)
        choices = question.get("choices")
        if not isinstance(choices, list) or len(choices) < 2 or not all(
                isinstance(c, dict) and isinstance(c.get("label"), str) and isinstance(c.get("text"), str)
                for c in choices):
            raise DataError("'question.choices' must be a list of {label, text}", path, lineno)
        labels = [c["label"] for c in choices]
        if len(set(labels)) != len(labels):  # the answer would be the first of two same-named choices
            raise DataError(f"choice labels repeat ({', '.join(labels)})", path, lineno)
        key = obj.get("answerKey")
        if key not in labels:
            raise DataError(f"answerKey {key!r} is not one of the choice labels {', '.join(labels)}",
                            path, lineno)
        out.append(MultipleChoiceExample(question["stem"], None, tuple(c["text"] for c in choices),
                                         labels.index(key)))
    return out


@register
class CommonsenseQA(Task):
    name = "commonsenseqa"
    head = "multiple_choice"
    options_read = ("dir", "train_file", "eval_file")
    metric = "accuracy"
    chance = 20.0
    description = "CommonsenseQA (5-way; accuracy on dev)"

    def files(self, split: str, language: str) -> list[Path]:
        return [self.split_file(split, "english/commonsenseqa", "train_rand_split.jsonl",
                                "dev_rand_split.jsonl")]

    def read(self, split: str, language: str) -> list[MultipleChoiceExample]:
        (path,) = self.files(split, language)
        return read_commonsenseqa(path)
