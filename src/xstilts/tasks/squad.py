"""SQuAD v1.1 extractive QA (intermediate task), and the SQuAD-JSON reader other QA tasks share.

Format: ``{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
"answers": [{"text", "answer_start"}], "is_impossible"?}]}]}], "version"}``; extra top-level keys
(e.g. the ``canary`` key of our copy) are ignored. SQuAD 2.0's ``is_impossible`` questions become
examples without answers (``plausible_answers`` are not answers and are ignored).

Files (folder option ``dir``, default ``english/squad``): ``train-v1.1.json`` and ``dev-v1.1.json``
as distributed (options ``train_file`` / ``eval_file``; our offline copy of dev is called
``squaddev_v1.1.json`` and is found too).

**Offline stand-in.** SQuAD train is not available offline. When the train file is missing
(``train_source = "auto"``, the default) or ``train_source = "dev-split"``, we split the dev set by
*article*: a fixed permutation (seed below, independent of the run seed) puts a fraction
``eval_fraction`` (default 0.25, i.e. 12 of the 48 dev articles) into ``eval`` and the rest into
``train``. Splitting articles rather than questions keeps every evaluation context unseen in
training, as with the real train/dev split.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from xstilts.errors import DataError
from xstilts.tasks.base import SpanQAExample, Task
from xstilts.tasks.formats import line_of, read_json
from xstilts.tasks.registry import register

SPLIT_SEED = 20200611  # fixed: part of the stand-in benchmark, not of a run's seed


def _fail(path: Path, message: str, needle: Any = None) -> DataError:
    line = line_of(path, json.dumps(needle, ensure_ascii=False)) if needle is not None else None
    if line is None and needle is not None:
        line = line_of(path, json.dumps(needle))
    return DataError(message, path, line)


def _answer(path: Path, qid: str, context: str, raw: Any) -> tuple[str, int]:
    """One gold answer; a start that does not point at the text is moved to the nearest match."""
    if not isinstance(raw, dict) or not isinstance(raw.get("text"), str) or "answer_start" not in raw:
        raise _fail(path, f"question {qid!r}: answer needs 'text' and 'answer_start'", qid)
    text, start = raw["text"], raw["answer_start"]
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise _fail(path, f"question {qid!r}: answer_start must be a non-negative integer", qid)
    if context[start: start + len(text)] != text:
        hits = [i for i in range(len(context)) if context.startswith(text, i)] if text else []
        if not hits:
            raise _fail(path, f"question {qid!r}: answer {text!r} does not occur in its context", qid)
        start = min(hits, key=lambda i: abs(i - start))
    return text, start


def read_squad_articles(path: Path) -> list[tuple[str, list[SpanQAExample]]]:
    """(title, questions) per article of a SQuAD v1.1/v2.0-format JSON file, in file order."""
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DataError("not SQuAD JSON: expected an object with a 'data' list", path, 1)
    articles: list[tuple[str, list[SpanQAExample]]] = []
    for a, article in enumerate(doc["data"]):
        title = str(article.get("title", f"article {a}")) if isinstance(article, dict) else ""
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise _fail(path, f"article {a} ({title!r}) has no 'paragraphs' list", title or None)
        examples: list[SpanQAExample] = []
        for p, para in enumerate(article["paragraphs"]):
            if not isinstance(para, dict) or not isinstance(para.get("context"), str) \
                    or not isinstance(para.get("qas"), list):
                raise _fail(path, f"article {title!r} paragraph {p}: needs 'context' text and a 'qas' list",
                            title)
            context = para["context"]
            for qa in para["qas"]:
                if not isinstance(qa, dict) or not isinstance(qa.get("question"), str) or "id" not in qa:
                    raise _fail(path, f"article {title!r} paragraph {p}: a question lacks 'id' or 'question'",
                                title)
                qid = str(qa["id"])
                raw_answers = qa.get("answers", [])
                if not isinstance(raw_answers, list):
                    raise _fail(path, f"question {qid!r}: 'answers' must be a list", qid)
                answers = () if qa.get("is_impossible", False) else tuple(
                    _answer(path, qid, context, ans) for ans in raw_answers)
                examples.append(SpanQAExample(qid, qa["question"], context, answers))
        articles.append((title, examples))
    return articles


def read_squad(path: Path) -> list[SpanQAExample]:
    """Every question of a SQuAD-format JSON file."""
    return [ex for _, examples in read_squad_articles(path) for ex in examples]


def article_split(n_articles: int, eval_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Article indices (train, eval) of the fixed held-out-articles split."""
    if not 0 < eval_fraction < 1:
        raise DataError(f"eval_fraction must be between 0 and 1, not {eval_fraction}")
    order = np.random.default_rng(SPLIT_SEED).permutation(n_articles)
    n_eval = min(n_articles - 1, max(1, int(round(n_articles * eval_fraction))))
    return np.sort(order[n_eval:]), np.sort(order[:n_eval])


class SQuADBase(Task):
    """Shared by SQuAD v1.1 and v2.0: file lookup and the held-out-articles stand-in."""

    head = "span_qa"
    options_read = ("dir", "train_file", "eval_file", "train_source", "eval_fraction")
    metric = "squad_f1"
    metrics = ("squad_f1", "exact_match")
    unanswerable: ClassVar[bool] = False
    train_names: ClassVar[tuple[str, ...]] = ()
    eval_names: ClassVar[tuple[str, ...]] = ()

    def _folder(self) -> Path:
        return self.option_path("dir", "english/squad")

    def _pick(self, key: str, names: tuple[str, ...]) -> Path:
        folder = self._folder()
        if key in self.options:
            return folder / self.options[key]
        return next((folder / n for n in names if (folder / n).is_file()), folder / names[0])

    def train_source(self) -> str:
        source = self.options.get("train_source", "auto")
        if source not in {"auto", "train-file", "dev-split"}:
            raise DataError(f"{self.name} train_source must be auto, train-file or dev-split, not {source!r}")
        if source == "auto":
            train_file = self._pick("train_file", self.train_names)
            source = "train-file" if train_file.is_file() else "dev-split"
        return source

    def files(self, split: str, language: str) -> list[Path]:
        if split == "train" and self.train_source() == "train-file":
            return [self._pick("train_file", self.train_names)]
        return [self._pick("eval_file", self.eval_names)]

    def read(self, split: str, language: str) -> list[SpanQAExample]:
        (path,) = self.files(split, language)
        if self.train_source() == "train-file":
            return read_squad(path)
        articles = read_squad_articles(path)
        if len(articles) < 2:
            raise DataError("the dev-split stand-in needs at least 2 articles", path)
        train_idx, eval_idx = article_split(len(articles), float(self.options.get("eval_fraction", 0.25)))
        chosen = train_idx if split == "train" else eval_idx
        return [ex for i in chosen for ex in articles[i][1]]


@register
class SQuAD(SQuADBase):
    name = "squad"
    train_names = ("train-v1.1.json",)
    eval_names = ("dev-v1.1.json", "squaddev_v1.1.json")
    description = "SQuAD v1.1 (F1/EM); offline: dev split by held-out articles"
