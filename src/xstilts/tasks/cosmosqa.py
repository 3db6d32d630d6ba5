"""Cosmos QA: commonsense reading comprehension, 4 answers per question.

Files ``english/cosmosqa/{train,valid}.csv`` as distributed (header ``id, context, question,
answer0, answer1, answer2, answer3, label``), or the same fields as ``.jsonl`` (the csv is used
when both exist; folder option ``dir``; option ``train_file`` names another training file). An
example is ``context`` as the first segment and ``question + " " + answer`` as the second.

**Offline stand-in.** Only ``valid.csv`` (2,985 questions) is available. When the train file is
missing, ``valid`` is split deterministically by *context* (several questions share one): a fixed
20 % of contexts (option ``eval_fraction``) form ``eval`` and the rest ``train``, so evaluation
contexts are unseen. With a train file, train and eval are the real train and valid splits.
"""

from __future__ import annotations

from pathlib import Path

from xstilts.errors import DataError
from xstilts.tasks._splits import group_split
from xstilts.tasks.base import MultipleChoiceExample, Task
from xstilts.tasks.formats import read_csv_dicts, read_jsonl
from xstilts.tasks.registry import register

FIELDS = ("context", "question", "answer0", "answer1", "answer2", "answer3", "label")


def _example(row: dict, path: Path, lineno: int) -> MultipleChoiceExample:
    for key in FIELDS[:-1]:
        if not isinstance(row.get(key), str):
            raise DataError(f"missing or non-text field {key!r}", path, lineno)
    label = row.get("label")
    label = label.strip() if isinstance(label, str) else label
    if isinstance(label, str) and label in {"0", "1", "2", "3"}:
        label = int(label)
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label <= 3:
        raise DataError(f"label must be 0-3, found {row.get('label')!r}", path, lineno)
    answers = tuple(row[f"answer{i}"] for i in range(4))
    return MultipleChoiceExample(row["context"], row["question"], answers, label)


def read_cosmosqa(path: Path) -> list[MultipleChoiceExample]:
    """A Cosmos QA csv or jsonl file (by extension)."""
    rows = read_jsonl(path) if path.suffix == ".jsonl" else read_csv_dicts(path, FIELDS)
    return [_example(row, path, lineno) for lineno, row in rows]


@register
class CosmosQA(Task):
    name = "cosmosqa"
    head = "multiple_choice"
    options_read = ("dir", "train_file", "eval_fraction")
    metric = "accuracy"
    chance = 25.0
    description = "Cosmos QA (accuracy); offline: valid split by context"

    def _file(self, stem: str) -> Path:
        folder = self.option_path("dir", "english/cosmosqa")
        csv = folder / f"{stem}.csv"
        return csv if csv.is_file() or not (folder / f"{stem}.jsonl").is_file() else folder / f"{stem}.jsonl"

    def _train(self) -> Path:
        if "train_file" in self.options:
            folder = self.option_path("dir", "english/cosmosqa")
            return folder / self.options["train_file"]
        return self._file("train")

    def files(self, split: str, language: str) -> list[Path]:
        train = self._train()
        return [train if split == "train" and train.is_file() else self._file("valid")]

    def read(self, split: str, language: str) -> list[MultipleChoiceExample]:
        (path,) = self.files(split, language)
        examples = read_cosmosqa(path)
        if self._train().is_file() or not examples:
            return examples
        fraction = float(self.options.get("eval_fraction", 0.2))
        train, held = group_split([ex.context for ex in examples], fraction)
        return [examples[i] for i in (train if split == "train" else held)]
