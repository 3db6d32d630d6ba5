"""The XTREME score: the benchmark's average over its nine tasks of each task's language average.

As XTREME's official ``evaluate.py`` computes it: for every task, the score in each of the
task's XTREME languages (English included where XTREME lists it) is averaged; each task counts
the metrics its class names in ``xtreme_metrics`` (QA ``(mean EM + mean F1) / 2``; UD-POS
seqeval's F1 over the tag sequences, not our primary word accuracy; the others their metric:
accuracy for XNLI, PAWS-X; F1 for PAN-X and BUCC; for Tatoeba the en→xx accuracy, the direction
XTREME's released retrieval script predicts and its gold files encode). The overall score is evaluate.py's
``all_task``: the plain mean of the nine task scores, existing only when all nine are present.
Group scores (classification, structured prediction, QA, retrieval) are reported for complete
groups, as ``evaluate.py`` does; the mean of the four group scores is shown beside the overall
score because it is sometimes quoted as "the" XTREME score. It is not what evaluate.py prints:
with XLM-R's published task scores (Hu et al. 2020) the nine-task mean is 68.3 and the group
mean 69.1; the leaderboard lists XLM-R at 68.2. MLQA counts its matching-language pairs only.

From a results store we take final target scores, average seeds per language first, and use the
languages of each task's XTREME list that the store holds; a task missing some of its languages
is still averaged over those it has, and the coverage is reported next to it (offline data lacks
several XTREME languages, e.g. BUCC has zh only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from xstilts.tasks import get_task
from xstilts.tasks.benchmark import GROUPS, TASKS


@dataclass
class TaskScore:
    """One task's language average, with the languages it was computed from."""

    task: str
    value: float
    languages: tuple[str, ...]
    missing_languages: tuple[str, ...]
    measure: str  # what was averaged, e.g. "accuracy" or "(EM + F1) / 2"


@dataclass
class XtremeScore:
    """The XTREME score of one intermediate setting (None while any task is missing)."""

    setting: str
    tasks: dict[str, TaskScore] = field(default_factory=dict)
    groups: dict[str, float] = field(default_factory=dict)

    @property
    def missing_tasks(self) -> list[str]:
        return [t for t in TASKS if t not in self.tasks]

    @property
    def score(self) -> float | None:
        """evaluate.py's ``all_task``: mean of the nine task scores (None while any is missing)."""
        if self.missing_tasks:
            return None
        return sum(self.tasks[t].value for t in TASKS) / len(TASKS)

    @property
    def group_mean(self) -> float | None:
        """Mean of the four group scores (None while any group is incomplete)."""
        if len(self.groups) < len(GROUPS):
            return None
        return sum(self.groups.values()) / len(self.groups)

    def message(self) -> str:
        """One line: the score, or why there is none."""
        partial = [f"{t} ({len(s.languages)}/{len(s.languages) + len(s.missing_languages)} languages)"
                   for t, s in self.tasks.items() if s.missing_languages]
        note = f"; language averages over partial lists: {', '.join(partial)}" if partial else ""
        if self.score is None:
            return (f"XTREME score of '{self.setting}': not computable, missing task(s) "
                    f"{', '.join(self.missing_tasks)} ({len(self.tasks)} of {len(TASKS)} present){note}")
        return (f"XTREME score of '{self.setting}': {self.score:.1f} (mean of 9 tasks, as evaluate.py; "
                f"mean of the 4 groups {self.group_mean:.1f}){note}")


def task_measure(task: str) -> str:
    """What is averaged for ``task``: its metric, or e.g. ``(EM + F1) / 2``."""
    names = {"squad_f1": "F1", "exact_match": "EM"}
    metrics = get_task(task).leaderboard_metrics()
    if len(metrics) == 1:
        return metrics[0]
    return f"({' + '.join(names.get(m, m) for m in sorted(metrics, key=lambda m: m != 'exact_match'))}) / {len(metrics)}"


def _task_score(task: str, sub: pd.DataFrame) -> TaskScore | None:
    """Language average of one task from its final scores (rows: language, metric, value)."""
    official = get_task(task).languages
    per_lang = sub.groupby(["language", "metric"])["value"].mean()  # seeds averaged first
    metrics = get_task(task).leaderboard_metrics()
    langs = [lang for lang in official if all((lang, m) in per_lang.index for m in metrics)]
    if not langs:
        return None
    means = [sum(per_lang[(lang, m)] for lang in langs) / len(langs) for m in metrics]
    missing = tuple(lang for lang in official if lang not in langs)
    return TaskScore(task, sum(means) / len(means), tuple(langs), missing, task_measure(task))


def xtreme_scores(finals: pd.DataFrame) -> dict[str, XtremeScore]:
    """XTREME score per intermediate setting, from final target scores.

    ``finals`` needs columns ``intermediate``, ``target``, ``language``, ``metric``, ``value``
    (one row per seed), as :func:`xstilts.results.final_scores` returns them.
    """
    out: dict[str, XtremeScore] = {}
    for setting, by_setting in finals.groupby("intermediate", sort=True):
        result = XtremeScore(str(setting))
        for task in TASKS:
            sub = by_setting[by_setting["target"] == task]
            if sub.empty:
                continue
            score = _task_score(task, sub)
            if score is not None:
                result.tasks[task] = score
        for group, members in GROUPS.items():
            if all(t in result.tasks for t in members):
                result.groups[group] = sum(result.tasks[t].value for t in members) / len(members)
        out[str(setting)] = result
    return out


def xtreme_from_store(expdir: Path) -> dict[str, XtremeScore]:
    """XTREME scores of every setting of an experiment directory."""
    from xstilts.results import final_scores

    return xtreme_scores(final_scores(expdir))


def score_table(scores: dict[str, XtremeScore]):  # -> rich.table.Table
    """Per-task XTREME scores of every setting side by side, with groups and both overall means."""
    from rich.table import Table

    table = Table(title="XTREME score (language averages; seeds averaged first)")
    table.add_column("task")
    table.add_column("measure")
    for setting in scores:
        table.add_column(setting, justify="right")
    table.add_column("languages")

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    for group, members in GROUPS.items():
        for task in members:
            present = [s.tasks[task] for s in scores.values() if task in s.tasks]
            coverage = (f"{len(present[0].languages)}/{len(present[0].languages) + len(present[0].missing_languages)}"
                        if present else "-")
            table.add_row(task, task_measure(task), *(cell(s.tasks[task].value if task in s.tasks else None)
                                                      for s in scores.values()), coverage)
        table.add_row(f"[{group}]", "group mean", *(cell(s.groups.get(group)) for s in scores.values()), "",
                      end_section=True)
    table.add_row("XTREME score", "mean of 9 tasks", *(cell(s.score) for s in scores.values()), "")
    table.add_row("", "mean of 4 groups", *(cell(s.group_mean) for s in scores.values()), "")
    return table


def _languages_cell(task_langs: tuple[str, ...], extra: tuple[str, ...]) -> str:
    text = f"{len(task_langs)}: {' '.join(task_langs)}"
    return text + (f"\nXTREME-R adds: {' '.join(extra)}" if extra else "")


def task_overview(data_dir: Path, check: bool = False):  # -> rich.table.Table
    """Every registered task: head kind, metrics, languages, and which of its data files exist.

    With ``check``, every file found is also read, so unreadable or unlabelled files (e.g. QA
    files whose answers were removed) show up with the reader's one-line reason.
    """
    from rich.table import Table

    from xstilts.errors import XstiltsError
    from xstilts.tasks import task_names

    table = Table(title=f"tasks (data: {data_dir})", show_lines=True)
    for col in ("task", "head", "metrics", "languages (XTREME)", "train (en)", "eval files found"):
        table.add_column(col)
    for name in task_names():
        task = get_task(name, data_dir=data_dir)
        extra = tuple(lang for lang in task.languages_r if lang not in task.languages)
        langs = task.languages + extra
        problems: list[str] = []
        if not task.trainable:
            train = "none: not trained"
        else:
            try:
                paths = task.files("train", "en")
                train = "found" if paths and all(p.is_file() for p in paths) else "missing"
                if check and train == "found":
                    task.load("train", "en")
            except XstiltsError as exc:
                train = "error"
                problems.append(f"train: {exc.one_line()}")
        found, missing = [], []
        for lang in langs:
            try:
                paths = task.files("eval", lang)
            except XstiltsError as exc:
                problems.append(f"{lang}: {exc.one_line()}")
                continue
            if paths and all(p.is_file() for p in paths):
                found.append(lang)
                if check:
                    try:
                        task.load("eval", lang)
                    except XstiltsError as exc:
                        problems.append(f"{lang}: {exc.one_line()}")
            else:
                missing.append(lang)
        cell = f"{len(found)}/{len(langs)}: {' '.join(found)}" if found else f"0/{len(langs)}"
        if missing:
            cell += f"\nmissing: {' '.join(missing)}"
        extra_langs = getattr(task, "extra_eval_languages", ())
        if extra_langs:
            more = [lang for lang in extra_langs
                    if all(p.is_file() for p in task.files("eval", lang))]
            cell += f"\nalso {len(more)}/{len(extra_langs)} of {extra_langs[0]}, ...: {' '.join(more)}"
        if check and not problems and (found or train == "found"):
            cell += "\nall read without error"
        if problems:
            shown = problems[:3] + ([f"... and {len(problems) - 3} more"] if len(problems) > 3 else [])
            cell += "\nproblems:\n" + "\n".join(shown)
        table.add_row(name, task.head, ", ".join(task.all_metrics()), _languages_cell(task.languages, extra),
                      train, cell)
    return table
