"""Adversarial NLI (ANLI v1.0), rounds R1–R3.

Files as distributed: ``anli_v1.0/R{1,2,3}/{train,dev,test}.jsonl``, one JSON object per line
with ``uid``, ``context`` (the premise), ``hypothesis`` and ``label`` (``e`` / ``n`` / ``c``); other
keys (``reason``, ``model_label``, ...) are ignored. ``premise`` is read in place of ``context``
(the name ANLI's own training code and the Hub give it). ``train`` concatenates the training files of the
chosen rounds (option ``rounds``, default all three) and ``eval`` their dev files (option
``eval_file = "test.jsonl"`` to use the test sets). Folder option ``dir`` (default
``english/anli/anli_v1.0``).
"""

from __future__ import annotations

from pathlib import Path

from xstilts.errors import DataError
from xstilts.tasks.base import ClassificationExample, Task
from xstilts.tasks.formats import read_jsonl
from xstilts.tasks.nli import NLI_LABELS, nli_label
from xstilts.tasks.registry import register

ROUNDS = ("R1", "R2", "R3")


def read_anli_jsonl(path: Path) -> list[ClassificationExample]:
    out: list[ClassificationExample] = []
    for lineno, obj in read_jsonl(path):
        premise = obj.get("context", obj.get("premise"))
        if not isinstance(premise, str):
            raise DataError("missing or non-text key 'context' (or 'premise')", path, lineno)
        for key in ("hypothesis", "label"):
            if not isinstance(obj.get(key), str):
                raise DataError(f"missing or non-text key {key!r}", path, lineno)
        label = nli_label(obj["label"], path, lineno)
        out.append(ClassificationExample(premise, obj["hypothesis"], label))
    return out


@register
class ANLI(Task):
    name = "anli"
    head = "classification"
    options_read = ("rounds", "dir", "eval_file")
    metric = "accuracy"
    labels = NLI_LABELS
    chance = 100 / 3
    description = "Adversarial NLI R1-R3 (accuracy on the rounds' dev sets)"

    def rounds(self) -> list[str]:
        rounds = self.options.get("rounds", list(ROUNDS))
        rounds = [rounds] if isinstance(rounds, str) else list(rounds)
        bad = [r for r in rounds if r not in ROUNDS]
        if bad or not rounds:
            raise DataError(f"anli rounds must be a non-empty subset of {', '.join(ROUNDS)}, not {rounds}")
        return rounds

    def files(self, split: str, language: str) -> list[Path]:
        folder = self.option_path("dir", "english/anli/anli_v1.0")
        name = "train.jsonl" if split == "train" else self.options.get("eval_file", "dev.jsonl")
        return [folder / r / name for r in self.rounds()]

    def read(self, split: str, language: str) -> list[ClassificationExample]:
        return [ex for path in self.files(split, language) for ex in read_anli_jsonl(path)]
