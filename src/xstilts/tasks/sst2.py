"""SST-2 (GLUE): binary sentiment of single sentences.

Files ``english/sst2/train.tsv`` (67,349) and ``dev.tsv`` (872) as GLUE distributes them:
header ``sentence<TAB>label``, label 0 (negative) / 1 (positive). Folder option ``dir``.
"""

from __future__ import annotations

from pathlib import Path

from xstilts.errors import DataError
from xstilts.tasks.base import ClassificationExample, Task
from xstilts.tasks.formats import read_tsv_header
from xstilts.tasks.registry import register

LABELS = ("negative", "positive")


def read_sst2(path: Path) -> list[ClassificationExample]:
    out: list[ClassificationExample] = []
    for lineno, row in read_tsv_header(path, ("sentence", "label")):
        label = row["label"].strip()
        if label not in {"0", "1"}:
            raise DataError(f"label must be 0 or 1, found {label!r}", path, lineno)
        if not row["sentence"].strip():
            raise DataError("empty sentence", path, lineno)
        out.append(ClassificationExample(row["sentence"].strip(), None, LABELS[int(label)]))
    return out


@register
class SST2(Task):
    name = "sst2"
    head = "classification"
    options_read = ("dir", "train_file", "eval_file")
    metric = "accuracy"
    labels = LABELS
    chance = 50.0
    description = "SST-2 sentiment (GLUE; accuracy)"

    def files(self, split: str, language: str) -> list[Path]:
        return [self.split_file(split, "english/sst2", "train.tsv", "dev.tsv")]

    def read(self, split: str, language: str) -> list[ClassificationExample]:
        (path,) = self.files(split, language)
        return read_sst2(path)
