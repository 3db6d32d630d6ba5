"""XNLI: natural language inference in 15 languages, English training data only.

Evaluation files: XTREME's ``xtreme/xnli/dev-{lang}.tsv`` (premise, hypothesis, label) or the
original XNLI-1.0 tsv (19 columns with a ``language`` column; option ``xnli_file``).

Training data: MNLI when it is available (option ``train_source = "mnli"``, files as in
:mod:`xstilts.tasks.mnli`). Offline it is not, so the default ``"auto"`` falls back to a
*premise-disjoint split of XNLI dev-en*: XNLI rows are parallel across languages (row i of
dev-de translates row i of dev-en) and come in groups of hypotheses per premise. We assign whole
premises to train or eval with a fixed permutation; the model trains on the English rows of the
train premises and every language is evaluated only on the eval premises, so no evaluation
example is a translation of a training example.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xstilts.errors import DataError
from xstilts.tasks._splits import split_group_ids
from xstilts.tasks.base import ClassificationExample, Task
from xstilts.tasks.formats import read_tsv, read_tsv_header
from xstilts.tasks.mnli import MNLI, read_mnli
from xstilts.tasks.nli import NLI_LABELS, nli_label
from xstilts.tasks.registry import register

LANGUAGES = tuple("ar bg de el en es fr hi ru sw th tr ur vi zh".split())
SPLIT_SEED = 20200523  # fixed: the split is part of the benchmark, not of a run's seed


def read_xtreme_tsv(path: Path) -> list[ClassificationExample]:
    return [
        ClassificationExample(cols[0], cols[1], nli_label(cols[2], path, lineno))
        for lineno, cols in read_tsv(path, 3)
    ]


def read_xnli_original(path: Path, language: str) -> list[ClassificationExample]:
    """XNLI-1.0 ``xnli.dev.tsv`` / ``xnli.test.tsv``: one file, a ``language`` column."""
    need = ("language", "gold_label", "sentence1", "sentence2")
    return [
        ClassificationExample(row["sentence1"], row["sentence2"], nli_label(row["gold_label"], path, lineno))
        for lineno, row in read_tsv_header(path, need)
        if row["language"] == language
    ]


def premise_groups(english: list[ClassificationExample]) -> np.ndarray:
    """Group id per row: rows sharing an English premise share a group."""
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(ex.text_a, len(ids)) for ex in english], dtype=np.int64)


def split_rows(english: list[ClassificationExample], train_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, eval) of a premise-disjoint split of the parallel XNLI rows."""
    return split_group_ids(premise_groups(english), train_fraction, SPLIT_SEED)


@register
class XNLI(Task):
    name = "xnli"
    head = "classification"
    options_read = ("dir", "train_source", "xnli_file", "train_fraction")
    nested_options = {"mnli": "mnli"}
    metric = "accuracy"
    labels = NLI_LABELS
    languages = LANGUAGES
    chance = 100 / 3
    parallel = True
    description = "XNLI (accuracy); English training = MNLI, or offline a premise-disjoint split of dev-en"

    def _folder(self) -> Path:
        return self.option_path("dir", "xtreme/xnli")

    def train_source(self) -> str:
        source = self.options.get("train_source", "auto")
        if source not in {"auto", "mnli", "xnli-dev-split"}:
            raise DataError(f"xnli train_source must be auto, mnli or xnli-dev-split, not {source!r}")
        if source == "auto":
            mnli_file = self.part(MNLI, self.options.get("mnli")).files("train", "en")[0]
            source = "mnli" if mnli_file.is_file() else "xnli-dev-split"
        return source

    def files(self, split: str, language: str) -> list[Path]:
        if split == "train" and self.train_source() == "mnli":
            return self.part(MNLI, self.options.get("mnli")).files("train", "en")
        if "xnli_file" in self.options:
            return [Path(self.options["xnli_file"])]
        lang = "en" if split == "train" else language
        return [self._folder() / f"dev-{lang}.tsv"]

    def _read_lang(self, language: str) -> list[ClassificationExample]:
        if "xnli_file" in self.options:
            path = Path(self.options["xnli_file"])
            rows = read_xnli_original(path, language)
            if not rows:
                raise DataError(f"no rows for language {language!r}", path)
            return rows
        return read_xtreme_tsv(self._folder() / f"dev-{language}.tsv")

    def read(self, split: str, language: str) -> list[ClassificationExample]:
        source = self.train_source()
        if split == "train" and source == "mnli":
            return read_mnli(self.files("train", "en")[0])
        rows = self._read_lang("en" if split == "train" else language)
        if source == "mnli":
            return rows
        english = rows if (split == "train" or language == "en") else self._read_lang("en")
        if len(english) != len(rows):
            raise DataError(
                f"{len(rows)} rows but dev-en has {len(english)}; XNLI files must be parallel",
                self.files(split, language)[0],
            )
        train_rows, eval_rows = split_rows(english, float(self.options.get("train_fraction", 0.5)))
        return [rows[i] for i in (train_rows if split == "train" else eval_rows)]
