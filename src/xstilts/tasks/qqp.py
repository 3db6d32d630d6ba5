"""Quora Question Pairs (GLUE QQP): is question 2 a paraphrase of question 1?

Files ``english/qqp/train.tsv`` and ``dev.tsv`` (folder option ``dir``) as GLUE distributes them:
header ``id qid1 qid2 question1 question2 is_duplicate``. The real train file has a few broken
rows (a newline inside a question splits a row in two); rows with the wrong number of columns
are skipped and counted, with one warning per file. A well-formed row with a label other than
0/1 is an error, and so is a file where more than 1 % of rows are broken (probably not QQP).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from xstilts.errors import DataError
from xstilts.tasks.base import ClassificationExample, Task
from xstilts.tasks.formats import iter_lines
from xstilts.tasks.registry import register

COLUMNS = ("id", "qid1", "qid2", "question1", "question2", "is_duplicate")
LABELS = ("not_duplicate", "duplicate")
MAX_BROKEN_FRACTION = 0.01


def read_qqp(path: Path) -> tuple[list[ClassificationExample], int]:
    """(examples, number of skipped malformed rows) of a GLUE QQP tsv file."""
    out: list[ClassificationExample] = []
    skipped = 0
    for lineno, line in iter_lines(path):
        cols = line.split("\t")
        if lineno == 1:
            if tuple(c.strip() for c in cols) != COLUMNS:
                raise DataError(f"not a GLUE QQP header (expected {' '.join(COLUMNS)})", path, lineno)
            continue
        if not line.strip():
            continue
        if len(cols) != len(COLUMNS) or not cols[3].strip() or not cols[4].strip():
            skipped += 1
            continue
        label = cols[5].strip()
        if label not in {"0", "1"}:
            raise DataError(f"is_duplicate must be 0 or 1, found {label!r}", path, lineno)
        out.append(ClassificationExample(cols[3], cols[4], LABELS[int(label)]))
    if skipped and skipped > MAX_BROKEN_FRACTION * (len(out) + skipped) and skipped > 2:
        raise DataError(f"{skipped} of {len(out) + skipped} rows are malformed; is this GLUE QQP?", path)
    return out, skipped


@register
class QQP(Task):
    name = "qqp"
    head = "classification"
    options_read = ("dir", "train_file", "eval_file")
    metric = "accuracy"
    labels = LABELS
    chance = 50.0
    description = "Quora Question Pairs (GLUE; accuracy)"

    def files(self, split: str, language: str) -> list[Path]:
        return [self.split_file(split, "english/qqp", "train.tsv", "dev.tsv")]

    def read(self, split: str, language: str) -> list[ClassificationExample]:
        (path,) = self.files(split, language)
        examples, skipped = read_qqp(path)
        if skipped:
            warnings.warn(f"{path}: skipped {skipped} malformed row(s) (wrong column count or empty "
                          "question)", stacklevel=2)
        return examples
