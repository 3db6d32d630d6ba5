"""XQuAD: 240 SQuAD v1.1 dev paragraphs and their 1,190 questions, translated into 10 languages.

Evaluation files: ``xtreme/xquad/xquad.{lang}.json`` (SQuAD v1.1 JSON). Metrics: SQuAD F1 and
exact match through the ``span_qa`` head.

Training data: XTREME trains on SQuAD v1.1 train (``train-v1.1.json``), used when option
``train_file`` names it or it sits in ``english/squad/``. Offline it is not there, so training
falls back to a **stand-in: SQuAD v1.1 dev minus every paragraph XQuAD was built from**. XQuAD's
240 paragraphs all come from SQuAD v1.1 dev; we drop each dev paragraph whose context equals
(after whitespace normalisation) a context of ``xquad.en.json``, and any question with an XQuAD
question id, and keep the other 1,827 paragraphs (9,376 questions). No evaluation context,
question id or question text is then seen in training (tests/tasks/test_xquad.py checks this on
the real files), though other paragraphs of the same 48 Wikipedia articles are (XTREME's real
setting has disjoint articles).

Files whose answers were removed (XTREME's ``remove_qa_test_annotations`` replaces every answer
by ``{"answer_start": 0, "text": ""}``) cannot be scored: reading one is a DataError that says
so, rather than a run that reports F1 against empty strings.
"""

from __future__ import annotations

from pathlib import Path

from xstilts.errors import DataError
from xstilts.tasks.base import SpanQAExample, Task
from xstilts.tasks.formats import line_of
from xstilts.tasks.registry import register
from xstilts.tasks.squad import read_squad, read_squad_articles

XTREME_LANGUAGES = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
XTREME_R_EXTRA = ("ro",)
SQUAD_TRAIN_NAMES = ("train-v1.1.json",)
SQUAD_DEV_NAMES = ("dev-v1.1.json", "squaddev_v1.1.json")


def _id_line(path: Path, qid: str) -> int | None:
    return line_of(path, f'"id": "{qid}"') or line_of(path, f'"id":"{qid}"')


def check_answers(path: Path, examples: list[SpanQAExample], scored: bool = True) -> list[SpanQAExample]:
    """Reject files with removed answers, empty answer strings and questions without answers, and
    (``scored``: files predictions are scored on) repeated question ids, naming the file and line.
    Every question of these SQuAD v1.1-style files is answerable: one without answers would be
    scored by SQuAD 2.0's rule, right when the prediction is empty; a repeated id would merge two
    questions' predictions (XTREME's TyDiQA train file repeats its ids, harmless for training)."""
    unanswered = next((ex for ex in examples if not ex.answers), None)
    if unanswered is not None:
        raise DataError(f"question {unanswered.id!r} has no answers (every question of this task's files is "
                        "answerable)", path, _id_line(path, unanswered.id))
    seen: set[str] = set()
    for ex in examples if scored else ():
        if ex.id in seen:
            raise DataError(f"question id {ex.id!r} occurs twice (the first at this line)", path, _id_line(path, ex.id))
        seen.add(ex.id)
    empty = [ex for ex in examples if any(text == "" for text, _ in ex.answers)]
    if not empty:
        return examples
    line = line_of(path, '"text": ""') or line_of(path, '"text":""')
    if len(empty) == len(examples):
        raise DataError("every answer is empty (answer_start 0, text ''): this file's answers were removed "
                        "(XTREME's remove_qa_test_annotations), so F1/EM cannot be computed; use the "
                        "original file with its answers", path, line)
    raise DataError(f"question {empty[0].id!r} has an empty answer text", path, line)


def read_labelled_squad(path: Path, scored: bool = True) -> list[SpanQAExample]:
    """Every question of a SQuAD-format file, which must carry real (non-empty) answers (and, where
    ``scored``, distinct ids)."""
    return check_answers(path, read_squad(path), scored)


def pick(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


@register
class XQuAD(Task):
    name = "xquad"
    head = "span_qa"
    options_read = ("dir", "squad_dir", "train_file")
    metric = "squad_f1"
    parallel = True
    metrics = ("squad_f1", "exact_match")
    xtreme_metrics = ("squad_f1", "exact_match")  # the leaderboard's (EM + F1) / 2
    languages = XTREME_LANGUAGES
    languages_r = tuple(sorted(XTREME_LANGUAGES + XTREME_R_EXTRA))
    description = "XQuAD (F1/EM); train = SQuAD v1.1, offline: SQuAD dev minus XQuAD's paragraphs"

    def _folder(self) -> Path:
        return self.option_path("dir", "xtreme/xquad")

    def _squad_folder(self) -> Path:
        return self.option_path("squad_dir", "english/squad")

    def train_file(self) -> Path | None:
        """SQuAD v1.1 train, when it exists (the real XTREME training set)."""
        if "train_file" in self.options:
            return Path(self.options["train_file"])
        return pick(self._squad_folder(), SQUAD_TRAIN_NAMES)

    def _squad_dev(self) -> Path:
        folder = self._squad_folder()
        return pick(folder, SQUAD_DEV_NAMES) or folder / SQUAD_DEV_NAMES[0]

    def files(self, split: str, language: str) -> list[Path]:
        if split == "train":
            real = self.train_file()
            if real is not None:
                return [real]
            return [self._squad_dev(), self._folder() / "xquad.en.json"]
        return [self._folder() / f"xquad.{language}.json"]

    def read(self, split: str, language: str) -> list[SpanQAExample]:
        if split != "train":
            return read_labelled_squad(self.files(split, language)[0])
        real = self.train_file()
        if real is not None:
            return read_labelled_squad(real, scored=False)
        return standin_train(*self.files(split, language))


def squash(text: str) -> str:
    """Whitespace-normalised text (runs of whitespace -> one space, ends stripped) for matching copies."""
    return " ".join(text.split())


def standin_train(squad_dev: Path, xquad_en: Path) -> list[SpanQAExample]:
    """SQuAD v1.1 dev questions whose paragraph is not one of XQuAD's (matched on xquad.en contexts).

    A question is left out when its context equals an XQuAD context after whitespace
    normalisation, or when its id is an XQuAD question id (XQuAD keeps SQuAD's ids).
    """
    xquad = read_squad(xquad_en)
    xquad_contexts = {squash(ex.context) for ex in xquad}
    xquad_ids = {ex.id for ex in xquad}
    examples = [ex for _, exs in read_squad_articles(squad_dev) for ex in exs]
    dev_contexts = {squash(ex.context) for ex in examples}
    missing = xquad_contexts - dev_contexts
    if missing:
        raise DataError(f"{len(missing)} of XQuAD's {len(xquad_contexts)} paragraphs are not in this SQuAD "
                        "v1.1 dev file, so the stand-in cannot exclude them (is it SQuAD v1.1 dev?)",
                        squad_dev)
    return check_answers(squad_dev, [ex for ex in examples
                                     if squash(ex.context) not in xquad_contexts and ex.id not in xquad_ids],
                         scored=False)
