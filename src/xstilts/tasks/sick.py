"""SICK: English sentence-pair NLI (SemEval 2014), our offline intermediate NLI task.

File ``english/sick/SICK.txt``: header row; ``SemEval_set`` is TRAIN / TRIAL / TEST. We train on
TRAIN and validate on TRIAL (the ``eval`` split; option ``eval_set = "TEST"`` to change).
"""

from __future__ import annotations

from pathlib import Path

from xstilts.tasks.base import ClassificationExample, Task
from xstilts.tasks.formats import read_tsv_header
from xstilts.tasks.nli import NLI_LABELS, nli_label
from xstilts.tasks.registry import register


@register
class SICK(Task):
    name = "sick"
    head = "classification"
    metric = "accuracy"
    labels = NLI_LABELS
    chance = 100 / 3
    description = "SICK entailment (3-way NLI, English)"

    def files(self, split: str, language: str, data_dir: Path) -> list[Path]:
        return [Path(self.options.get("file", data_dir / "english" / "sick" / "SICK.txt"))]

    def read(self, split: str, language: str, data_dir: Path) -> list[ClassificationExample]:
        (path,) = self.files(split, language, data_dir)
        wanted = "TRAIN" if split == "train" else self.options.get("eval_set", "TRIAL")
        need = ("sentence_A", "sentence_B", "entailment_label", "SemEval_set")
        return [
            ClassificationExample(row["sentence_A"], row["sentence_B"],
                                  nli_label(row["entailment_label"], path, lineno))
            for lineno, row in read_tsv_header(path, need)
            if row["SemEval_set"] == wanted
        ]
