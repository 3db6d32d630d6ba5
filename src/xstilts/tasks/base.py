"""What a task is: examples, a head kind, a metric, languages, and readers for its files.

A task module defines one :class:`Task` subclass and registers an instance with
:func:`xstilts.tasks.registry.register`. Adding a task is adding one file. An instance is bound to
its options and its data directory when it is made (``get_task(name, options, data_dir)``), so
its readers take only a split and a language.

Splits: ``train`` is the English training set; ``eval`` is the evaluation set of a language
(XTREME test files ship without labels, so XTREME's dev splits serve as evaluation sets). The
English ``eval`` split is what model selection uses ("English dev").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from xstilts.errors import DataError
from xstilts.identity import note_read

#: The split that holds a language's evaluation set; its name in the store's ``scores.split``.
EVAL_SPLIT = "eval"

HeadKind = Literal["tagging", "classification", "span_qa", "multiple_choice", "retrieval"]

#: Task options a head reads for every task of its kind (``xstilts.heads.*``, ``xstilts.tasks._retrieval``).
HEAD_OPTIONS: dict[str, tuple[str, ...]] = {
    "tagging": ("stride", "windows"),
    "span_qa": ("doc_stride", "max_query_length", "n_best", "max_answer_length"),
    "retrieval": ("layer", "pool", "prefix", "batch_size", "backend"),
}


@dataclass(frozen=True)
class TaggingExample:
    """A pre-tokenised sentence with one tag per word (NER, POS, CCG)."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]


@dataclass(frozen=True)
class ClassificationExample:
    """A sentence or sentence pair with a label (NLI, paraphrase, sentiment)."""

    text_a: str
    text_b: str | None
    label: str


@dataclass(frozen=True)
class SpanQAExample:
    """Extractive QA: answers are (text, character start in context); empty = unanswerable.

    ``answer_language`` set (MLQA) scores with that language's official normalisation.
    """

    id: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]
    answer_language: str | None = None


@dataclass(frozen=True)
class MultipleChoiceExample:
    """A context (+ optional question) and candidate endings; ``label`` is the correct index."""

    context: str
    question: str | None
    choices: tuple[str, ...]
    label: int


@dataclass(frozen=True)
class SentencePair:
    """A parallel sentence pair for retrieval tasks (Tatoeba, BUCC)."""

    source: str
    target: str


Example = TaggingExample | ClassificationExample | SpanQAExample | MultipleChoiceExample | SentencePair


@dataclass
class Task:
    """Base class: subclasses set the class attributes and implement :meth:`read`."""

    name: ClassVar[str]
    head: ClassVar[HeadKind]
    metric: ClassVar[str]  # primary metric, see xstilts.metrics.stats
    metrics: ClassVar[tuple[str, ...]] = ()  # all metrics reported (defaults to (metric,))
    # The metrics XTREME's evaluate.py averages into this task's leaderboard score (defaults to
    # (metric,)); QA counts (EM + F1) / 2, UD-POS seqeval's F1 rather than our primary accuracy.
    xtreme_metrics: ClassVar[tuple[str, ...]] = ()
    labels: ClassVar[tuple[str, ...]] = ()  # label set for tagging/classification
    languages: ClassVar[tuple[str, ...]] = ("en",)  # evaluation languages (XTREME list)
    languages_r: ClassVar[tuple[str, ...]] = ()  # XTREME-R list, where it differs
    chance: ClassVar[float] = 0.0  # chance score on the 0-100 scale of ``metric``
    # False for tasks scored on the encoder as it is (retrieval): no training split, no head, no
    # model selection, and no English evaluation set (they are xx against English).
    trainable: ClassVar[bool] = True
    # True when row i of every language's eval file is the same item (a translated test set):
    # the analysis then resamples one set of items for all languages.
    parallel: ClassVar[bool] = False
    description: ClassVar[str] = ""
    # The ``task_options`` keys this task reads; the config rejects any other key, so a typo
    # (``train_fractoin``) is an error instead of a silently ignored setting. Its head's options
    # (HEAD_OPTIONS) come on top.
    options_read: ClassVar[tuple[str, ...]] = ()
    # Options that hold another task's options (``mnli = {dir = ...}``): option -> that task's name.
    nested_options: ClassVar[dict[str, str]] = {}

    options: dict[str, Any] = field(default_factory=dict)  # per-task config (e.g. file overrides)
    # Where the data lives (a config's data_dir), bound when the task is made (get_task), so no
    # reader takes it as an argument. None for a task used only for what it is (plan, config).
    data_dir: Path | None = None

    @property
    def data(self) -> Path:
        """The data directory; an error for a task made without one."""
        if self.data_dir is None:
            raise DataError(f"task {self.name} was made without a data directory")
        return Path(self.data_dir)

    def at(self, data_dir: str | Path) -> Task:
        """The same task (same options) reading from another data directory."""
        return replace(self, options=dict(self.options), data_dir=Path(data_dir))

    def part(self, cls: type[Task], options: dict[str, Any] | None = None) -> Task:
        """Another task that this one reads through (a component, its training set), on the same data."""
        return cls(options=dict(options or {}), data_dir=self.data_dir)

    def option_path(self, option: str, default: str) -> Path:
        """The path option ``option`` names, else ``default`` under the data directory."""
        if option in self.options:
            return Path(self.options[option])
        return self.data / default

    def split_file(self, split: str, folder: str, train: str, dev: str) -> Path:
        """An English task's one file for ``split``: ``train`` or ``dev`` under ``folder``.

        Why one helper: every single-file task takes the same three options, ``dir`` for the folder
        and ``train_file`` / ``eval_file`` to name another file in it.
        """
        key, default = ("train_file", train) if split == "train" else ("eval_file", dev)
        return self.option_path("dir", folder) / self.options.get(key, default)

    @classmethod
    def known_options(cls) -> tuple[str, ...]:
        """Every ``task_options`` key this task understands: its own, nested tasks' and its head's."""
        return (*cls.options_read, *cls.nested_options, *HEAD_OPTIONS.get(cls.head, ()))

    def all_metrics(self) -> tuple[str, ...]:
        return self.metrics or (self.metric,)

    def leaderboard_metrics(self) -> tuple[str, ...]:
        """What the XTREME score averages for this task (their mean, per language)."""
        return self.xtreme_metrics or (self.metric,)

    def files(self, split: str, language: str) -> list[Path]:
        """The files :meth:`read` would read; used for 'which data was found' listings."""
        raise NotImplementedError

    def read(self, split: str, language: str) -> list[Example]:
        """Read and validate every example of a split; raise DataError naming file and line."""
        raise NotImplementedError

    def load(self, split: str, language: str, limit: int | None = None) -> list[Example]:
        """Read a split, checking it is not empty, and keep the first ``limit`` examples."""
        examples = self.read(split, language)
        if not examples:
            files = self.files(split, language)
            raise DataError("no examples found (empty file?)", files[0] if files else self.data_dir)
        return examples[:limit] if limit else examples

    def check_labels(self, label: str, path: Path, line: int) -> str:
        """Reject labels outside the task's label set, naming where they came from."""
        if self.labels and label not in self.labels:
            raise DataError(f"unknown label {label!r} (expected one of {', '.join(self.labels)})", path, line)
        return label


def require_file(path: Path) -> Path:
    """A missing data file is a user error with the path in the message, not an OSError.

    Every reader opens its files through here, so this is also where a run's data identity is
    recorded (:func:`xstilts.identity.note_read`).
    """
    if not path.is_file():
        raise DataError("data file not found", path)
    note_read(path)
    return path
