"""ANLI+: ANLI R1–R3, MNLI and SNLI training sets trained as one 3-way NLI task with one head.

This is the "ANLI+" intermediate task of Phang et al. (2020): the union of the training sets,
sampled as one data set (not as separate tasks), so the larger MNLI/SNLI dominate by size.
Evaluation (model selection) is on the ANLI dev sets of the chosen rounds. Each component reads
its own files with its own options, given as nested tables: ``anli = {rounds = ["R1"]}``,
``mnli = {dir = "..."}``, ``snli = {...}``; option ``components`` (default all three) drops one,
e.g. where MNLI is not available. The union is shuffled with a fixed seed, so an example cap
(``max_train_examples`` / ``task_caps``) keeps every component in proportion, not just ANLI.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xstilts.errors import DataError
from xstilts.tasks.anli import ANLI
from xstilts.tasks.base import ClassificationExample, Task
from xstilts.tasks.mnli import MNLI
from xstilts.tasks.nli import NLI_LABELS
from xstilts.tasks.registry import register
from xstilts.tasks.snli import SNLI

SHUFFLE_SEED = 20200710
COMPONENTS: dict[str, type[Task]] = {"anli": ANLI, "mnli": MNLI, "snli": SNLI}


@register
class ANLIPlus(Task):
    name = "anli_plus"
    head = "classification"
    options_read = ("components",)
    nested_options = {"anli": "anli", "mnli": "mnli", "snli": "snli"}
    metric = "accuracy"
    labels = NLI_LABELS
    chance = 100 / 3
    description = "ANLI+ = ANLI R1-R3 + MNLI + SNLI training, one NLI head; eval on ANLI dev"

    def components(self) -> list[Task]:
        names = list(self.options.get("components", list(COMPONENTS)))
        bad = [n for n in names if n not in COMPONENTS]
        if bad or "anli" not in names:
            raise DataError("anli_plus components must include 'anli' and come from "
                            f"{', '.join(COMPONENTS)}, not {names}")
        return [self.part(COMPONENTS[n], self.options.get(n)) for n in names]

    def _anli(self) -> Task:
        return self.part(ANLI, self.options.get("anli"))

    def files(self, split: str, language: str) -> list[Path]:
        if split != "train":
            return self._anli().files(split, language)
        return [p for task in self.components() for p in task.files("train", language)]

    def read(self, split: str, language: str) -> list[ClassificationExample]:
        if split != "train":
            return self._anli().read(split, language)
        union = [ex for task in self.components() for ex in task.read("train", language)]
        return [union[i] for i in np.random.default_rng(SHUFFLE_SEED).permutation(len(union))]
