"""SNLI 1.0 (Stanford NLI), the jsonl distribution.

Files ``snli_1.0_{train,dev,test}.jsonl`` in ``english/snli/snli_1.0`` (or directly in
``english/snli``; folder option ``dir``; ``train_file`` / ``eval_file`` name other files):
``sentence1``, ``sentence2``, ``gold_label``. Rows whose gold label is ``-`` (no majority among
the five annotators) are dropped, as in the SNLI paper.
"""

from __future__ import annotations

from pathlib import Path

from xstilts.tasks.base import ClassificationExample, Task
from xstilts.tasks.mnli import read_nli_jsonl
from xstilts.tasks.nli import NLI_LABELS
from xstilts.tasks.registry import register


@register
class SNLI(Task):
    name = "snli"
    head = "classification"
    options_read = ("dir", "train_file", "eval_file")
    metric = "accuracy"
    labels = NLI_LABELS
    chance = 100 / 3
    description = "SNLI 1.0 (jsonl; '-' gold labels dropped)"

    def files(self, split: str, language: str) -> list[Path]:
        name = (self.options.get("train_file", "snli_1.0_train.jsonl") if split == "train"
                else self.options.get("eval_file", "snli_1.0_dev.jsonl"))
        if "dir" in self.options:
            return [Path(self.options["dir"]) / name]
        root = self.data / "english" / "snli"
        nested = root / "snli_1.0" / name
        return [nested if nested.is_file() or not (root / name).is_file() else root / name]

    def read(self, split: str, language: str) -> list[ClassificationExample]:
        (path,) = self.files(split, language)
        return read_nli_jsonl(path)
