"""HellaSwag: pick the plausible continuation of an ActivityNet / WikiHow context (4 endings).

Files ``english/hellaswag/hellaswag_{train,val}.jsonl`` (folder option ``dir``): objects with
``ctx_a``, ``ctx_b``, ``endings`` (4 strings) and ``label``; other keys are ignored. An example is
``ctx_a`` as the first segment and ``ctx_b + " " + ending`` as the second (the split sentence
context, as HellaSwag's own BERT baseline does).

**Offline stand-in.** Our copy has only the first 3,368 rows of the training file and no
validation file. When ``hellaswag_val.jsonl`` is missing, the training file is split
deterministically by ``source_id`` (the video or WikiHow article): a fixed 20 % of sources
(option ``eval_fraction``) form ``eval``, the rest ``train``, so no evaluation context shares a
source with training. With the validation file present, train and eval are the real splits.
"""

from __future__ import annotations

from pathlib import Path

from xstilts.errors import DataError
from xstilts.tasks._splits import group_split
from xstilts.tasks.base import MultipleChoiceExample, Task
from xstilts.tasks.formats import read_jsonl
from xstilts.tasks.registry import register


def read_hellaswag(path: Path) -> list[tuple[str, MultipleChoiceExample]]:
    """(source_id, example) per line of a HellaSwag jsonl file."""
    out: list[tuple[str, MultipleChoiceExample]] = []
    for lineno, obj in read_jsonl(path):
        for key in ("ctx_a", "ctx_b"):
            if not isinstance(obj.get(key), str):
                raise DataError(f"missing or non-text key {key!r}", path, lineno)
        endings = obj.get("endings")
        if not isinstance(endings, list) or len(endings) < 2 or not all(isinstance(e, str) for e in endings):
            raise DataError("'endings' must be a list of at least 2 strings", path, lineno)
        label = obj.get("label")
        if isinstance(label, str) and label.isdigit():
            label = int(label)
        if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < len(endings):
            raise DataError(f"'label' must be an ending index 0-{len(endings) - 1}, found {label!r}",
                            path, lineno)
        ctx_b = obj["ctx_b"].strip()
        endings_text = tuple(e.strip() for e in endings)
        ex = MultipleChoiceExample(obj["ctx_a"].strip(), ctx_b or None, endings_text, label)
        out.append((str(obj.get("source_id", obj.get("ind", lineno))), ex))
    return out


@register
class HellaSwag(Task):
    name = "hellaswag"
    head = "multiple_choice"
    options_read = ("dir", "train_file", "eval_file", "eval_fraction")
    metric = "accuracy"
    chance = 25.0
    description = "HellaSwag (accuracy); offline: partial train split by source"

    def _folder(self) -> Path:
        return self.option_path("dir", "english/hellaswag")

    def _val(self) -> Path:
        return self._folder() / self.options.get("eval_file", "hellaswag_val.jsonl")

    def _train(self) -> Path:
        return self._folder() / self.options.get("train_file", "hellaswag_train.jsonl")

    def files(self, split: str, language: str) -> list[Path]:
        if split == "train" or not self._val().is_file():
            return [self._train()]
        return [self._val()]

    def read(self, split: str, language: str) -> list[MultipleChoiceExample]:
        if self._val().is_file():
            path = self._train() if split == "train" else self._val()
            return [ex for _, ex in read_hellaswag(path)]
        rows = read_hellaswag(self._train())
        if not rows:
            return []
        train, held = group_split([src for src, _ in rows], float(self.options.get("eval_fraction", 0.2)))
        return [rows[i][1] for i in (train if split == "train" else held)]
