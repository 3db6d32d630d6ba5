"""SICK: English sentence-pair NLI (SemEval 2014), our offline intermediate NLI task.

File ``english/sick/SICK.txt``: header row; ``SemEval_set`` is TRAIN / TRIAL / TEST. We train on
TRAIN and validate on TRIAL (the ``eval`` split; option ``eval_set = "TEST"`` to change).
"""

from __future__ import annotations

from pathlib import Path

from xstilts.errors import DataError
from xstilts.tasks.base import ClassificationExample, Task
from xstilts.tasks.formats import read_tsv_header
from xstilts.tasks.nli import NLI_LABELS, nli_label
from xstilts.tasks.registry import register

SEMEVAL_SETS = ("TRAIN", "TRIAL", "TEST")  # the file's splits (compared case-insensitively)


@register
class SICK(Task):
    name = "sick"
    head = "classification"
    options_read = ("file", "eval_set")
    metric = "accuracy"
    labels = NLI_LABELS
    chance = 100 / 3
    description = "SICK entailment (3-way NLI, English)"

    def files(self, split: str, language: str) -> list[Path]:
        return [self.option_path("file", "english/sick/SICK.txt")]

    def read(self, split: str, language: str) -> list[ClassificationExample]:
        (path,) = self.files(split, language)
        wanted = "TRAIN" if split == "train" else str(self.options.get("eval_set", "TRIAL"))
        need = ("sentence_A", "sentence_B", "entailment_label", "SemEval_set")
        rows = list(read_tsv_header(path, need))
        for lineno, row in rows:  # a misspelt set name would otherwise drop its row without a word
            if row["SemEval_set"].strip().upper() not in SEMEVAL_SETS:
                raise DataError(f"SemEval_set {row['SemEval_set']!r} is none of {', '.join(SEMEVAL_SETS)}", path, lineno)
        # set names compare case-insensitively: a re-exported file may spell them 'train' / 'trial'
        examples = [
            ClassificationExample(row["sentence_A"], row["sentence_B"], nli_label(row["entailment_label"], path, lineno))
            for lineno, row in rows
            if row["SemEval_set"].strip().upper() == wanted.upper()
        ]
        if rows and not examples:  # rows there, none of this set: say so, not "empty file?"
            found = sorted({row["SemEval_set"] for _, row in rows})
            raise DataError(f"no rows with SemEval_set {wanted!r} (the file has {', '.join(map(repr, found))})", path)
        return examples
