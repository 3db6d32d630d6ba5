"""MultiNLI, the English training set XTREME uses for XNLI (and an intermediate task).

Readers for both distributed forms: GLUE's ``MNLI/train.tsv`` (header row; ``sentence1`` and
``sentence2`` at columns 8 and 9, ``gold_label`` last) and ``multinli_1.0_*.jsonl``.
Rows whose gold label is ``-`` (no annotator consensus) are dropped, as everyone does.
"""

from __future__ import annotations

from pathlib import Path

from xstilts.errors import DataError
from xstilts.tasks.base import ClassificationExample, Task
from xstilts.tasks.formats import iter_lines, read_jsonl
from xstilts.tasks.nli import NLI_LABELS, nli_label
from xstilts.tasks.registry import register


def read_mnli_glue_tsv(path: Path) -> list[ClassificationExample]:
    """GLUE MNLI tsv: columns 8/9 are the sentences and the last column is the gold label."""
    out: list[ClassificationExample] = []
    ncols = 0
    for lineno, line in iter_lines(path):
        cols = line.split("\t")
        if lineno == 1:
            if len(cols) < 11 or cols[8] != "sentence1" or cols[9] != "sentence2" or cols[-1] != "gold_label":
                raise DataError("not a GLUE MNLI header (sentence1/sentence2 at columns 8/9, gold_label last)",
                                path, lineno)
            ncols = len(cols)
            continue
        if not line.strip():
            continue
        if len(cols) != ncols:
            raise DataError(f"expected {ncols} tab-separated columns, found {len(cols)}", path, lineno)
        if cols[-1] == "-":
            continue
        out.append(ClassificationExample(cols[8], cols[9], nli_label(cols[-1], path, lineno)))
    return out


def read_nli_jsonl(path: Path) -> list[ClassificationExample]:
    """multinli/snli jsonl: ``sentence1``, ``sentence2``, ``gold_label`` ('-' rows dropped)."""
    out: list[ClassificationExample] = []
    for lineno, obj in read_jsonl(path):
        try:
            s1, s2, gold = obj["sentence1"], obj["sentence2"], obj["gold_label"]
        except KeyError as exc:
            raise DataError(f"missing key {exc.args[0]!r}", path, lineno) from None
        if gold == "-":
            continue
        out.append(ClassificationExample(str(s1), str(s2), nli_label(str(gold), path, lineno)))
    return out


def read_mnli(path: Path) -> list[ClassificationExample]:
    """Either MNLI form, chosen by extension."""
    return read_nli_jsonl(path) if path.suffix == ".jsonl" else read_mnli_glue_tsv(path)


@register
class MNLI(Task):
    name = "mnli"
    head = "classification"
    options_read = ("dir", "train_file", "eval_file")
    metric = "accuracy"
    labels = NLI_LABELS
    chance = 100 / 3
    description = "MultiNLI (GLUE tsv or multinli jsonl); eval = dev_matched"

    def files(self, split: str, language: str) -> list[Path]:
        return [self.split_file(split, "english/mnli", "train.tsv", "dev_matched.tsv")]

    def read(self, split: str, language: str) -> list[ClassificationExample]:
        (path,) = self.files(split, language)
        return read_mnli(path)
