"""CCG supertagging (CCGbank) in the format jiant prepares it.

Files in ``english/ccg`` (folder option ``dir``): ``ccg.train``, ``ccg.dev``, ``ccg.test``, one
sentence per line as ``tokens<TAB>tags`` (both space-separated, one tag per token), and
``tags_to_id.json`` mapping each supertag to its id (jiant's 1,363 tags). The label set is the
tags of ``tags_to_id.json`` in id order; a tag not in it is an error. Scored by token accuracy.

The label set lives in a data file, so it is read when the task first learns where its data is:
in :meth:`files` as well as :meth:`read`, because a feature-cache hit calls only :meth:`files`
and the head still needs ``labels`` to be built.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from xstilts.errors import DataError
from xstilts.tasks.base import TaggingExample, Task
from xstilts.tasks.formats import iter_lines, read_json
from xstilts.tasks.registry import register


def read_tags_to_id(path: Path) -> tuple[str, ...]:
    """Tags in id order; ids must be 0..n-1 (ints or digit strings, as jiant writes either)."""
    raw = read_json(path)
    if not isinstance(raw, dict) or not raw:
        raise DataError("tags_to_id.json must be a non-empty object {tag: id}", path, 1)
    try:
        ids = {tag: int(i) for tag, i in raw.items()}
    except (TypeError, ValueError):
        raise DataError("tags_to_id.json ids must be integers", path, 1) from None
    if sorted(ids.values()) != list(range(len(ids))):
        raise DataError("tags_to_id.json ids must be 0..n-1 without gaps or repeats", path, 1)
    return tuple(sorted(ids, key=ids.__getitem__))


def read_ccg(path: Path, tags: tuple[str, ...]) -> list[TaggingExample]:
    known = set(tags)
    out: list[TaggingExample] = []
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 2:
            raise DataError(f"expected 'tokens<TAB>tags', found {len(cols)} tab-separated column(s)",
                            path, lineno)
        tokens, labels = cols[0].split(), cols[1].split()
        if len(tokens) != len(labels):
            raise DataError(f"{len(tokens)} tokens but {len(labels)} tags", path, lineno)
        unknown = [t for t in labels if t not in known]
        if unknown:
            raise DataError(f"tag {unknown[0]!r} is not in tags_to_id.json", path, lineno)
        out.append(TaggingExample(tuple(tokens), tuple(labels)))
    return out


@register
class CCG(Task):
    name = "ccg"
    head = "tagging"
    options_read = ("dir", "train_file", "eval_file")
    metric = "token_accuracy"
    description = "CCG supertagging (jiant format; token accuracy)"
    folder: ClassVar[str] = "english/ccg"  # under the data directory; option ``dir`` moves it

    def _folder(self) -> Path:
        return self.option_path("dir", self.folder)

    def _load_labels(self) -> Path:
        path = self._folder() / "tags_to_id.json"
        self.labels = read_tags_to_id(path)  # instance attribute: the label set is data
        return path

    def files(self, split: str, language: str) -> list[Path]:
        tags = self._load_labels()
        return [self.split_file(split, self.folder, "ccg.train", "ccg.dev"), tags]

    def read(self, split: str, language: str) -> list[TaggingExample]:
        path, _ = self.files(split, language)
        return read_ccg(path, self.labels)
