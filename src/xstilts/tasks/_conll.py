"""Tagging tasks in XTREME's CoNLL layout (PAN-X, UD-POS): one base class for their files.

Both ship ``train-en.tsv`` and ``dev-{lang}.tsv`` in one folder (option ``dir`` overrides it),
``token<TAB>tag`` with a blank line between sentences, possibly with XTREME's raw language prefix
on every token (``formats.read_conll`` strips it only where every token of the file carries it).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from xstilts.tasks.base import TaggingExample, Task
from xstilts.tasks.formats import read_conll


class XtremeTaggingTask(Task):
    """A tagging task whose files follow XTREME's layout; subclasses name the folder and labels."""

    head = "tagging"
    options_read = ("dir",)
    folder: ClassVar[str]  # the default folder under the data directory, e.g. "xtreme/panx"

    def files(self, split: str, language: str) -> list[Path]:
        name = "train-en.tsv" if split == "train" else f"dev-{language}.tsv"
        return [self.option_path("dir", self.folder) / name]

    def read(self, split: str, language: str) -> list[TaggingExample]:
        (path,) = self.files(split, language)
        file_language = "en" if split == "train" else language  # a raw XTREME file's token prefix
        return [TaggingExample(tuple(toks), tuple(tags))
                for _, toks, tags in read_conll(path, self.labels, file_language)]
