"""PAWS-X: paraphrase identification (adversarial word-swap pairs) in 7 languages.

Evaluation files: XTREME's ``xtreme/pawsx/dev-{lang}.tsv`` (``sentence1<TAB>sentence2<TAB>label``,
label 0/1) or the original PAWS-X ``x-final/{lang}/dev_2k.tsv`` (header ``id sentence1 sentence2
label``); both forms are recognised by their first line.

Training data: XTREME trains on the English PAWS train set (``train-en.tsv`` from its download
script, or PAWS-X's ``x-final/en/train.tsv``). It is used when option ``train_file`` names it or
``train-en.tsv`` sits beside the dev files. Offline it does not, so training falls back to a
*sentence-disjoint split of dev-en*: rows are parallel across languages (row i of dev-de
translates row i of dev-en) and PAWS reuses a source sentence across several pairs, so rows that
share any English sentence are put in one group (connected components), and whole groups go to
train or eval with a fixed permutation. No evaluation row, in any language, is then a
translation of a training row or shares a sentence with one. The translated dev sets were
re-annotated, so a few labels differ from English; each language keeps its own labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from xstilts.errors import DataError
from xstilts.tasks._splits import split_group_ids
from xstilts.tasks.base import ClassificationExample, Task
from xstilts.tasks.formats import iter_lines
from xstilts.tasks.registry import register

LANGUAGES = ("de", "en", "es", "fr", "ja", "ko", "zh")
SPLIT_SEED = 20200524  # fixed: the split is part of the benchmark, not of a run's seed
_HEADER = ["id", "sentence1", "sentence2", "label"]


def read_pawsx_tsv(path: Path) -> list[ClassificationExample]:
    """XTREME's 3-column form, or PAWS-X's 4-column form with an ``id sentence1 sentence2 label`` header."""
    out: list[ClassificationExample] = []
    ncols = 3
    for lineno, line in iter_lines(path):
        cols = line.split("\t")
        if lineno == 1 and cols == _HEADER:
            ncols = 4
            continue
        if not line.strip():
            continue
        if len(cols) != ncols:
            raise DataError(f"expected {ncols} tab-separated columns, found {len(cols)}", path, lineno)
        s1, s2, label = cols[-3], cols[-2], cols[-1].strip()
        if label not in ("0", "1"):
            raise DataError(f"unknown label {label!r} (expected 0 or 1)", path, lineno)
        out.append(ClassificationExample(s1, s2, label))
    return out


def sentence_groups(english: list[ClassificationExample]) -> np.ndarray:
    """Group id per row: rows linked by a shared sentence (either side) share a group."""
    ids: dict[str, int] = {}
    a = [ids.setdefault(ex.text_a, len(ids)) for ex in english]
    b = [ids.setdefault(ex.text_b or "", len(ids)) for ex in english]
    n_rows, n_sent = len(english), len(ids)
    # bipartite graph rows <-> sentences; components of it group the rows
    rows = np.concatenate([np.arange(n_rows), np.arange(n_rows)])
    cols = n_rows + np.array(a + b)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_rows + n_sent,) * 2)
    _, labels = connected_components(graph, directed=False)
    _, groups = np.unique(labels[:n_rows], return_inverse=True)
    return groups.astype(np.int64)


def split_rows(english: list[ClassificationExample], train_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, eval) of a sentence-disjoint split of the parallel dev rows."""
    return split_group_ids(sentence_groups(english), train_fraction, SPLIT_SEED)


@register
class PAWSX(Task):
    name = "pawsx"
    head = "classification"
    options_read = ("dir", "train_file", "train_fraction")
    metric = "accuracy"
    labels = ("0", "1")
    languages = LANGUAGES
    chance = 50.0
    parallel = True
    description = "PAWS-X paraphrase identification (accuracy); offline train = half of dev-en"

    def _folder(self) -> Path:
        return self.option_path("dir", "xtreme/pawsx")

    def train_file(self) -> Path | None:
        """The real English training file, if there is one."""
        if "train_file" in self.options:
            return Path(self.options["train_file"])
        candidate = self._folder() / "train-en.tsv"
        return candidate if candidate.is_file() else None

    def _dev_file(self, language: str) -> Path:
        return self._folder() / f"dev-{language}.tsv"

    def files(self, split: str, language: str) -> list[Path]:
        real = self.train_file()
        if split == "train":
            return [real] if real else [self._dev_file("en")]
        return [self._dev_file(language)]

    def read(self, split: str, language: str) -> list[ClassificationExample]:
        real = self.train_file()
        if real is not None:
            return read_pawsx_tsv(real if split == "train" else self._dev_file(language))
        lang = "en" if split == "train" else language
        rows = read_pawsx_tsv(self._dev_file(lang))
        english = rows if lang == "en" else read_pawsx_tsv(self._dev_file("en"))
        if len(english) != len(rows):
            raise DataError(f"{len(rows)} rows but dev-en has {len(english)}; PAWS-X dev files must be "
                            "parallel", self._dev_file(lang))
        train_rows, eval_rows = split_rows(english, float(self.options.get("train_fraction", 0.5)))
        return [rows[i] for i in (train_rows if split == "train" else eval_rows)]
