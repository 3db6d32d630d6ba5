"""Predictions and gold labels in XTREME's submission layout, and a scorer for such folders.

XTREME (google-research/xtreme ``evaluate.py``) scores a folder of predictions against a folder
of labels laid out alike: ``{task}/test-{lang}.{tsv|json}`` with XTREME's task names (``bucc2018``
where xstilts says ``bucc``). Writing xstilts' predictions that way lets anyone score them with
the official script, and :func:`score_submission` scores the same folders with xstilts' own metric
code, so a test can show both agree. File formats, per task:

* ``panx``, ``udpos``: one tag per line, a blank line after every sentence. Both are scored with
  seqeval's entity F1 -- UD-POS too, as XTREME's leaderboard does: a POS tag has no ``B-``/``I-``
  prefix, so seqeval reads a run of identical tags as one "entity"; that is the published metric,
  not word accuracy.
* ``xnli``, ``pawsx``: one label per line (accuracy).
* ``tatoeba``: one line per English sentence, the index of the retrieved non-English sentence
  (accuracy; XTREME's gold file has the same meaning, so this is the en→xx direction, xstilts'
  ``accuracy_en_xx``).
* ``bucc2018``: one mined pair ``xx_id<TAB>en_id`` per line (set F1 against the gold pairs).
* ``xquad``, ``mlqa``, ``tydiqa``: predictions are a JSON object ``{question id: answer text}``;
  labels are SQuAD v1.1 JSON. MLQA normalises answers by the file's language, the others by SQuAD
  v1.1's rules; a question without a prediction scores 0, as in the official scripts.

Aggregation follows ``evaluate.py``: per task, each metric is averaged over languages
(``avg_<metric>``), ``avg_metric`` is ``(avg_exact_match + avg_f1) / 2`` for QA, else ``avg_f1`` or
``avg_accuracy``; a group score exists when all its tasks were scored, ``all_task`` (the XTREME
score) when all nine were. One difference, because offline data lacks languages: ``evaluate.py``
stops at the first missing language file, here a task is scored over the XTREME languages whose
label file exists and the others are listed in :attr:`SubmissionScores.missing_languages`. Label
files of languages outside XTREME's list (XQuAD's ``ro``) are ignored, as ``evaluate.py`` ignores them.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xstilts.errors import ConfigError, DataError
from xstilts.faults import atomic_path
from xstilts.metrics.classification import accuracy_stats
from xstilts.metrics.ner import entity_stats
from xstilts.metrics.squad import squad_stats
from xstilts.metrics.stats import score_from_stats
from xstilts.tasks import get_task
from xstilts.tasks.base import ClassificationExample, SpanQAExample, TaggingExample, Task
from xstilts.tasks.benchmark import EVALUATE_PY_GROUPS, SUBMISSION_NAMES
from xstilts.tasks.benchmark import GROUPS as BENCHMARK_GROUPS
from xstilts.tasks.formats import decode_utf8

#: xstilts task name -> XTREME's folder name for it.
XTREME_NAMES = SUBMISSION_NAMES
#: XTREME's task groups (folder names), keyed as ``evaluate.py`` keys them.
GROUPS = {EVALUATE_PY_GROUPS[group]: tuple(SUBMISSION_NAMES[t] for t in tasks) for group, tasks in BENCHMARK_GROUPS.items()}
QA_TASKS = GROUPS["qa"]
_FORMAT = {"pawsx": "labels", "xnli": "labels", "tatoeba": "labels", "udpos": "tags", "panx": "tags",
           "bucc2018": "pairs", "xquad": "answers", "mlqa": "answers", "tydiqa": "answers"}
_XSTILTS_NAMES = {v: k for k, v in XTREME_NAMES.items()}


def xtreme_name(task: str) -> str:
    """XTREME's folder name of an xstilts task (or of an XTREME name); a ConfigError for other tasks."""
    if task in _XSTILTS_NAMES:
        return task
    if task not in XTREME_NAMES:
        raise ConfigError(f"task {task!r} is not an XTREME task; the submission layout has "
                          f"{', '.join(XTREME_NAMES)}")
    return XTREME_NAMES[task]


def xtreme_languages(task: str) -> tuple[str, ...]:
    """The languages XTREME scores ``task`` in (the task's own XTREME list)."""
    return tuple(get_task(_XSTILTS_NAMES[xtreme_name(task)]).languages)


def submission_file(root: str | Path, task: str, language: str) -> Path:
    """``root/{xtreme task}/test-{language}.{json for QA, else tsv}``."""
    name = xtreme_name(task)
    return Path(root) / name / f"test-{language}.{'json' if name in QA_TASKS else 'tsv'}"


# ---------------------------------------------------------------------------------------------
# Writing (every file atomically: a crash never leaves a half-written submission file)


def _write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _check_token(value: str, what: str) -> str:
    """A tag/label/id is one line-safe token: the reader could not tell it apart otherwise."""
    if not value or value != value.strip() or any(c in value for c in "\t\n\r"):
        raise ValueError(f"{what} {value!r} cannot be written one per line (empty, padded, or holds a tab/newline)")
    return value


def write_tags(path: str | Path, sentences: Sequence[Sequence[str]]) -> Path:
    """One tag per line, a blank line after each sentence (XTREME's tagging layout)."""
    lines = []
    for tags in sentences:
        lines.extend(_check_token(t, "tag") for t in tags)
        lines.append("")
    return _write_text(Path(path), "".join(f"{line}\n" for line in lines))


def write_labels(path: str | Path, labels: Sequence[object]) -> Path:
    """One label (or Tatoeba index) per line."""
    return _write_text(Path(path), "".join(f"{_check_token(str(v), 'label')}\n" for v in labels))


def write_pairs(path: str | Path, pairs: Sequence[tuple[str, str]]) -> Path:
    """BUCC: one ``xx_id<TAB>en_id`` per line."""
    return _write_text(Path(path), "".join(f"{_check_token(s, 'id')}\t{_check_token(t, 'id')}\n"
                                           for s, t in pairs))


def write_answers(path: str | Path, answers: Mapping[str, str]) -> Path:
    """QA predictions: one JSON object, question id -> answer text."""
    return _write_text(Path(path), json.dumps(dict(answers), ensure_ascii=False, indent=1) + "\n")


def write_squad_gold(path: str | Path, examples: Sequence[SpanQAExample], title: str = "xstilts") -> Path:
    """QA gold labels as SQuAD v1.1 JSON; consecutive questions on one context share a paragraph."""
    paragraphs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for ex in examples:
        if ex.id in seen:
            raise ValueError(f"question id {ex.id!r} occurs twice: answers are keyed by id")
        seen.add(ex.id)
        if not paragraphs or paragraphs[-1]["context"] != ex.context:
            paragraphs.append({"context": ex.context, "qas": []})
        paragraphs[-1]["qas"].append({"id": ex.id, "question": ex.question,
                                      "answers": [{"text": t, "answer_start": s} for t, s in ex.answers]})
    doc = {"version": "1.1", "data": [{"title": title, "paragraphs": paragraphs}]}
    return _write_text(Path(path), json.dumps(doc, ensure_ascii=False, indent=1) + "\n")


def write_predictions(root: str | Path, task: Task | str, language: str, examples: Sequence[Any] | None,
                      predictions: Sequence[Any]) -> Path:
    """Write one language's predictions of ``task`` under ``root`` in XTREME's layout.

    ``predictions`` are what the head predicts, one per example of ``examples``: a tag list
    (tagging), a label (classification), an answer text (QA: ``examples`` give the question ids),
    an index (Tatoeba, one per English sentence); for BUCC the mined ``(xx_id, en_id)`` pairs
    themselves. ``examples`` may be None for BUCC and Tatoeba, which need no example to write.
    """
    name = xtreme_name(task if isinstance(task, str) else task.name)
    path = submission_file(root, name, language)
    fmt = _FORMAT[name]
    if fmt == "pairs":
        return write_pairs(path, predictions)
    if examples is None:
        if fmt != "labels" or name != "tatoeba":
            raise ValueError(f"{name}: writing predictions needs the examples they belong to")
        return write_labels(path, predictions)
    if len(examples) != len(predictions):
        raise ValueError(f"{name} {language}: {len(examples)} examples but {len(predictions)} predictions")
    if fmt == "tags":
        for i, (ex, tags) in enumerate(zip(examples, predictions, strict=True)):
            if len(ex.tokens) != len(tags):
                raise ValueError(f"{name} {language} sentence {i}: {len(ex.tokens)} words but {len(tags)} tags")
        return write_tags(path, predictions)
    if fmt == "answers":
        return write_answers(path, {ex.id: str(a) for ex, a in zip(examples, predictions, strict=True)})
    return write_labels(path, predictions)


def write_gold(root: str | Path, task: Task, language: str, limit: int | None = None) -> Path:
    """Write the gold labels of one language's evaluation set (its first ``limit`` examples).

    Read with the task's own reader, so a gold folder matches exactly what xstilts evaluates.
    BUCC's gold are the pairs of the last split that has them (``test`` if its gold exists,
    else ``dev``), among its first ``limit`` sentences per side.
    """
    if xtreme_name(task.name) == "bucc2018":
        corpora = [c.head(limit) for c in task.read("eval", language) if c.gold is not None]  # type: ignore[attr-defined]
        return write_pairs(submission_file(root, task.name, language), sorted(corpora[-1].gold))
    return write_gold_examples(root, task, language, task.load("eval", language, limit))


def write_gold_examples(root: str | Path, task: Task | str, language: str, examples: Sequence[Any]) -> Path:
    """Write gold labels from evaluation examples already read (tagging, classification, QA, Tatoeba).

    Tatoeba's gold is the alignment of its pairs: English sentence j translates sentence j.
    """
    name = xtreme_name(task if isinstance(task, str) else task.name)
    path = submission_file(root, name, language)
    if name == "bucc2018":
        raise ValueError("BUCC gold pairs come from its corpus, not from examples: use write_gold")
    if name == "tatoeba":
        return write_labels(path, range(len(examples)))
    if all(isinstance(ex, TaggingExample) for ex in examples):
        return write_tags(path, [ex.tags for ex in examples])
    if all(isinstance(ex, ClassificationExample) for ex in examples):
        return write_labels(path, [ex.label for ex in examples])
    return write_squad_gold(path, examples)


# ---------------------------------------------------------------------------------------------
# Reading (the official readers' semantics; malformed input is a DataError naming file and line)


def _text(path: Path) -> str:
    """The file as ``evaluate.py`` reads it (UTF-8, a BOM kept); bad UTF-8 is named by its line."""
    if not path.is_file():
        raise DataError("submission file not found", path)
    return decode_utf8(path, path.read_bytes(), strip_bom=False)


def _lines(path: Path) -> list[str]:
    """Stripped lines, split as Python's text mode splits them (what ``evaluate.py`` reads)."""
    return [line.strip() for line in io.StringIO(_text(path), newline=None)]


def read_tags(path: Path) -> list[list[str]]:
    """Sentences of tags: a blank line ends a sentence (two in a row make an empty one, as in XTREME)."""
    sentences: list[list[str]] = []
    current: list[str] = []
    for lineno, line in enumerate(_lines(path), start=1):
        if not line:
            sentences.append(current)
            current = []
        elif any(c.isspace() for c in line):
            raise DataError(f"expected one tag per line, found {line!r} (a token<TAB>tag file?)", path, lineno)
        else:
            current.append(line)
    if current:
        sentences.append(current)
    return sentences


def read_labels(path: Path) -> list[str]:
    """One label per line (blank lines count: they hold a position)."""
    return _lines(path)


def read_pairs(path: Path) -> set[tuple[str, str]]:
    """BUCC ``xx_id<TAB>en_id`` pairs as a set (a repeated pair counts once, as in XTREME)."""
    pairs: set[tuple[str, str]] = set()
    for lineno, line in enumerate(_lines(path), start=1):
        cols = line.split("\t")
        if len(cols) != 2 or not all(cols):
            raise DataError(f"expected 'xx_id<TAB>en_id', found {line!r}", path, lineno)
        pairs.add((cols[0], cols[1]))
    return pairs


def _load_json(path: Path) -> Any:
    text = _text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg}", path, e.lineno) from None


def read_answers(path: Path) -> dict[str, str]:
    """QA predictions: a JSON object mapping question ids to answer strings."""
    doc = _load_json(path)
    if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
        raise DataError("expected a JSON object mapping question ids to answer strings", path)
    return doc


def read_squad_gold(path: Path) -> list[tuple[str, list[str]]]:
    """(question id, gold answer texts) of a SQuAD v1.1 file (``{"data": [...]}`` or the bare list)."""
    doc = _load_json(path)
    articles = doc.get("data") if isinstance(doc, dict) else doc
    out: list[tuple[str, list[str]]] = []
    try:
        for article in articles:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    answers = [a["text"] for a in qa["answers"]]
                    if not answers or not all(isinstance(a, str) for a in answers):
                        raise DataError(f"question {qa['id']!r} has no gold answer text "
                                        "(SQuAD v1.1 scoring needs at least one)", path)
                    out.append((str(qa["id"]), answers))
    except (KeyError, TypeError) as e:
        raise DataError(f"not SQuAD v1.1 JSON (data/paragraphs/qas/answers): missing {e}", path) from None
    return out


# ---------------------------------------------------------------------------------------------
# Scoring, with xstilts' metric code


def _f1_precision_recall(rows: np.ndarray) -> dict[str, float]:
    """F1 (xstilts' micro F1) plus precision and recall from ``(correct, predicted, gold)`` rows."""
    hits, n_pred, n_gold = rows.sum(axis=0)
    return {"f1": score_from_stats("f1", rows),
            "precision": 100.0 * hits / n_pred if n_pred else 0.0,
            "recall": 100.0 * hits / n_gold if n_gold else 0.0}


def score_file(task: str, prediction_file: Path, label_file: Path, language: str) -> dict[str, float]:
    """One language of one task, on the 0–100 scale, with ``evaluate.py``'s metric names."""
    name = xtreme_name(task)
    fmt = _FORMAT[name]
    if fmt == "tags":
        gold, pred = read_tags(label_file), read_tags(prediction_file)
        if len(gold) != len(pred):
            raise DataError(f"{len(pred)} sentences but the labels {label_file} have {len(gold)}", prediction_file)
        with warnings.catch_warnings():
            # POS tags have no B-/I- prefix: seqeval warns for each one, and XTREME scores them so on purpose
            warnings.simplefilter("ignore", UserWarning)
            try:
                rows = entity_stats(gold, pred)
            except ValueError as e:
                raise DataError(f"{e} (labels: {label_file})", prediction_file) from None
        return _f1_precision_recall(rows)
    if fmt == "pairs":
        gold_pairs, pred_pairs = read_pairs(label_file), read_pairs(prediction_file)
        return _f1_precision_recall(np.array([[len(gold_pairs & pred_pairs), len(pred_pairs), len(gold_pairs)]],
                                             dtype=np.float64))
    if fmt == "labels":
        gold_labels, pred_labels = read_labels(label_file), read_labels(prediction_file)
        if not gold_labels:
            raise DataError("no labels", label_file)
        if len(gold_labels) != len(pred_labels):
            raise DataError(f"{len(pred_labels)} lines but the labels {label_file} have {len(gold_labels)}",
                            prediction_file)
        return {"accuracy": score_from_stats("accuracy", accuracy_stats(gold_labels, pred_labels))}
    questions = read_squad_gold(label_file)
    if not questions:
        raise DataError("no questions", label_file)
    answers = read_answers(prediction_file)
    answered = [i for i, (qid, _) in enumerate(questions) if qid in answers]
    stats = squad_stats([questions[i][1] for i in answered], [answers[questions[i][0]] for i in answered],
                        [language] * len(answered) if name == "mlqa" else None)
    out = {}
    for metric, key in (("exact_match", "exact_match"), ("f1", "squad_f1")):
        rows = np.zeros((len(questions), 3))
        rows[:, 1:] = 1.0  # an unanswered question weighs 1 and scores 0
        rows[answered, 0] = stats[key][:, 0]
        out[metric] = score_from_stats(key, rows)
    return out


@dataclass
class SubmissionScores:
    """``evaluate.py``'s two answers (``overall``: groups and ``all_task``; ``detailed``: per task,
    ``{metric: {lang: score}}`` plus ``avg_<metric>`` and ``avg_metric``), and the XTREME languages
    each scored task lacked a label file for."""

    overall: dict[str, float] = field(default_factory=dict)
    detailed: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing_languages: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """What ``evaluate.py`` writes to its output file: group scores and tasks in one mapping."""
        return {**self.overall, **self.detailed}


def score_task(task: str, pred_dir: str | Path, label_dir: str | Path) -> tuple[dict[str, Any], tuple[str, ...]]:
    """One task's ``evaluate.py`` entry over the XTREME languages with a label file, and those without."""
    name = xtreme_name(task)
    languages = [lang for lang in xtreme_languages(name) if submission_file(label_dir, name, lang).is_file()]
    missing = tuple(lang for lang in xtreme_languages(name) if lang not in languages)
    if not languages:
        raise DataError(f"no label file for any XTREME language of {name}", Path(label_dir) / name)
    score: dict[str, Any] = {}
    for lang in languages:
        result = score_file(name, submission_file(pred_dir, name, lang), submission_file(label_dir, name, lang), lang)
        for metric, value in result.items():
            score.setdefault(metric, {})[lang] = value
    averages = {f"avg_{m}": sum(v.values()) / len(v) for m, v in score.items()}
    score.update(averages)
    if name in QA_TASKS:
        score["avg_metric"] = (averages["avg_exact_match"] + averages["avg_f1"]) / 2
    else:
        score["avg_metric"] = averages.get("avg_f1", averages.get("avg_accuracy"))
    return score, missing


def score_submission(pred_dir: str | Path, label_dir: str | Path) -> SubmissionScores:
    """Score every XTREME task that has a folder in both ``pred_dir`` and ``label_dir``."""
    pred_dir, label_dir = Path(pred_dir), Path(label_dir)
    for d in (pred_dir, label_dir):
        if not d.is_dir():
            raise DataError("submission folder not found", d)
    out = SubmissionScores()
    for task in XTREME_NAMES.values():
        if (pred_dir / task).is_dir() and (label_dir / task).is_dir():
            out.detailed[task], missing = score_task(task, pred_dir, label_dir)
            if missing:
                out.missing_languages[task] = missing
    scored = set(out.detailed)
    if scored == set(XTREME_NAMES.values()):
        out.overall["all_task"] = sum(out.detailed[t]["avg_metric"] for t in scored) / len(scored)
    for group, tasks in GROUPS.items():
        if scored.issuperset(tasks):
            out.overall[group] = sum(out.detailed[t]["avg_metric"] for t in tasks) / len(tasks)
    return out


def _task_dirs(run_dirs: Sequence[Path]) -> dict[str, Path]:
    """The task folders of several runs by name. Two runs giving the same task (two seeds, two
    settings) is an error naming both: a submission holds one prediction per question."""
    origin: dict[str, Path] = {}
    for run_dir in run_dirs:
        for task_dir in sorted(p for p in Path(run_dir).iterdir() if p.is_dir()):
            if task_dir.name in origin:
                raise DataError(f"task {task_dir.name} comes from two runs: {origin[task_dir.name].parent.name} "
                                f"and {run_dir.name}; gather one seed of one setting", task_dir)
            origin[task_dir.name] = task_dir
    return origin


def gather(run_dirs: Sequence[Path], out: Path) -> list[str]:
    """Copy several runs' submission folders (each holding one task) into one, as evaluate.py wants.

    Returns the task folders gathered. Files are copied byte for byte (each atomically): checking
    them is :func:`write_submission`'s job, done on the originals so errors name those.
    """
    origin = _task_dirs(run_dirs)
    for name, task_dir in origin.items():
        for src in sorted(task_dir.iterdir()):
            target = out / name / src.name
            with atomic_path(target) as tmp:
                tmp.write_bytes(src.read_bytes())
    return sorted(origin)


def write_submission(pred_dirs: Sequence[Path], label_dirs: Sequence[Path], out: Path) -> list[str]:
    """Gather runs' predictions and labels into ``out/predictions`` and ``out/labels``; the tasks.

    Every run's files are read and scored first, so bad input is an error naming the run's own
    file and line (not its copy) before anything is written. A new ``out`` is built in a hidden
    sibling and renamed into place: an error or a crash never leaves a half-written one. An
    existing ``out`` is added to, as before (files of the same name are replaced).
    """
    _task_dirs(pred_dirs)  # a task from two runs: an error before anything is written
    _task_dirs(label_dirs)
    for pred_dir, label_dir in zip(pred_dirs, label_dirs, strict=True):
        score_submission(pred_dir, label_dir)
    if out.exists():
        tasks = gather(pred_dirs, out / "predictions")
        gather(label_dirs, out / "labels")
        return tasks
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{os.getpid()}.partial"
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed process that had our pid
    try:
        tasks = gather(pred_dirs, tmp / "predictions")
        gather(label_dirs, tmp / "labels")
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tasks
