"""Evaluation sets of a run, evaluated at every evaluation step, and the history kept for
selection: curve scores for every step, per-example rows for the selected step.

Cross-fitted selection (phase 3, ``hold_out=True``): the checkpoint is chosen on the English
items of the *selection half* (:func:`~xstilts.evaluation.halves.selection_mask`) and English is
stored and reported on the other half only, so the reported English score, and the transfer gap
built from it, are not the optimistic score that picked the checkpoint. Stored English rows are
per-example rows with the selection half zeroed, and every stored English score is computed from
exactly those rows. The selection-half curve is kept as split ``"select"`` so the analysis can
reproduce the choice. Other languages are stored in full. Phase 2 (English only, nothing
transferred) selects and reports on the whole English dev set.

Phase 3 also keeps every language's per-example rows of the primary metric at *every* evaluation
step (``keep_curve_stats``): the analysis needs them to cross-fit the per-language oracle.

With ``runtime.write_predictions`` a target run also keeps the predictions of its best step so far
(only those: every step's would cost memory for nothing; the training loop says which step is best,
through ``train(on_best=...)``, so the rule lives in the loop alone) and writes those of the selected step in
XTREME's submission layout (:mod:`xstilts.evaluation.submission`), with the gold labels of the
same examples beside them. English is written in full: the submission has no held-out half.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from xstilts.config import TrainConfig
from xstilts.context import RunContext
from xstilts.evaluation.halves import SELECT_SPLIT, keep_rows, report_mask, selection_mask
from xstilts.evaluation.predict import evaluate_many
from xstilts.evaluation.submission import XTREME_NAMES, write_gold_examples, write_predictions
from xstilts.featurize import load_features
from xstilts.heads import Evaluation, Feature, HeadKind, get_head_kind
from xstilts.metrics.stats import score_from_stats
from xstilts.plan import Run
from xstilts.store import RunResult, Score
from xstilts.tasks.base import EVAL_SPLIT, Example, Task
from xstilts.training.tracking import RunTracker, run_tracker


@dataclass
class EvalSet:
    task: Task
    language: str
    examples: list[Example]
    features: list[Feature]


def load_eval_sets(ctx: RunContext, task: Task, languages: tuple[str, ...] | list[str], max_length: int,
                   limit: int | None) -> list[EvalSet]:
    sets = []
    for lang in languages:
        ex, feats = load_features(task, EVAL_SPLIT, lang, ctx.tokenizer, max_length, limit, ctx.cache_dir)
        sets.append(EvalSet(task, lang, ex, feats))
    return sets


@dataclass
class EvalClock:
    """Wall time and real (non-padding) tokens of every evaluation, for throughput reports."""

    seconds: float = 0.0
    tokens: int = 0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass
class EvalHistory:
    """Evaluations by step; ``select`` names the (task, language) pairs whose mean picks the model.

    ``primary`` maps each task to its primary metric, the one selection uses. With ``hold_out``
    the ``select`` pairs are split: their selection half picks the model, their report half is
    stored (see the module docstring). With ``keep_curve_stats`` the primary metric's
    per-example rows of every step and language are stored too. With ``keep_predictions`` the
    predictions of the latest step are held until the training loop calls :meth:`keep_best` for it,
    which keeps them as the best step's (:meth:`write_predictions` writes them). With
    ``tracker`` every recorded step's stored scores are logged live, the same values the store
    will hold.
    """

    select: list[tuple[str, str]]
    primary: dict[str, str]
    hold_out: bool = False
    keep_curve_stats: bool = False
    keep_predictions: bool = False
    by_step: dict[int, dict[tuple[str, str], Evaluation]] = field(default_factory=dict)
    clock: EvalClock = field(default_factory=EvalClock)
    # (step, predictions per (task, language)): of the latest recorded step, and of the step the
    # training loop last called best
    latest_predictions: tuple[int, dict[tuple[str, str], list[Any] | None]] | None = None
    best_predictions: tuple[int, dict[tuple[str, str], list[Any] | None]] | None = None
    tracker: RunTracker | None = None

    def record(self, step: int, results: dict[tuple[str, str], Evaluation]) -> float:
        self.by_step[step] = {key: Evaluation(ev.stats) for key, ev in results.items()}  # rows only
        if self.tracker is not None:
            self.tracker.log_scores(step, {(task, lang, metric): value for (task, lang), ev in results.items()
                                           for metric, value in self.stored((task, lang), ev).scores.items()})
        chosen = [self.selection_score(key, results[key]) for key in self.select]
        if self.keep_predictions:
            self.latest_predictions = (step, {key: ev.predictions for key, ev in results.items()})
        return sum(chosen) / len(chosen)

    def keep_best(self, step: int) -> None:
        """The training loop's call when ``step`` became the best: keep its predictions, drop the old."""
        if self.latest_predictions is None or self.latest_predictions[0] != step:
            return  # predictions are not kept (or this step was not recorded here)
        self.best_predictions, self.latest_predictions = self.latest_predictions, None

    def write_predictions(self, sets: list[EvalSet], best_step: int, pred_root: Path, label_root: Path) -> list[Path]:
        """Write the selected step's predictions of every XTREME set and the gold labels beside them.

        ``pred_root`` gets ``{xtreme task}/test-{lang}.{tsv|json}``, ``label_root`` the same for
        the gold labels, so :func:`~xstilts.evaluation.submission.score_submission` (or XTREME's
        ``evaluate.py``) can score the pair. Sets of non-XTREME tasks are skipped.
        """
        if self.best_predictions is None or self.best_predictions[0] != best_step:
            kept = None if self.best_predictions is None else self.best_predictions[0]
            raise RuntimeError(f"predictions were kept for step {kept} but step {best_step} was selected")
        written = []
        for s in sets:
            preds = self.best_predictions[1].get((s.task.name, s.language))
            if s.task.name not in XTREME_NAMES or preds is None:
                continue
            write_gold_examples(label_root, s.task, s.language, s.examples)
            written.append(write_predictions(pred_root, s.task, s.language, s.examples, preds))
        return written

    def selection_score(self, key: tuple[str, str], ev: Evaluation) -> float:
        """The primary metric of ``key`` on the rows that choose the checkpoint."""
        metric = self.primary[key[0]]
        rows = ev.stats[metric]
        if self.hold_out:
            rows = keep_rows(rows, selection_mask(len(rows)))
        return score_from_stats(metric, rows)

    def stored(self, key: tuple[str, str], ev: Evaluation) -> Evaluation:
        """What is stored (and reported) for ``key``: the report half of a held-out pair, else all of it."""
        if not (self.hold_out and key in self.select):
            return ev
        return Evaluation({m: keep_rows(rows, report_mask(len(rows))) for m, rows in ev.stats.items()})

    def to_result(self, best_step: int) -> RunResult:
        result = RunResult(selected_step=best_step)
        result.extra = {"eval_s": self.clock.seconds, "eval_tokens": self.clock.tokens,
                        "eval_tokens_per_s": self.clock.tokens_per_second}
        for step, results in sorted(self.by_step.items()):
            for key, full in results.items():
                task, lang = key
                ev = self.stored(key, full)
                for metric, value in ev.scores.items():
                    result.scores.append(Score(task, lang, EVAL_SPLIT, metric, value, step, "curve"))
                    if step == best_step:
                        result.scores.append(Score(task, lang, EVAL_SPLIT, metric, value, step, "final"))
                        result.example_stats[(task, lang, EVAL_SPLIT, metric)] = ev.stats[metric]
                metric = self.primary[task]
                if self.hold_out and key in self.select:
                    result.scores.append(Score(task, lang, SELECT_SPLIT, metric, self.selection_score(key, full),
                                               step, "curve"))
                if self.keep_curve_stats and metric in ev.stats:
                    result.curve_stats[(task, lang, EVAL_SPLIT, metric, step)] = ev.stats[metric]
        return result

    def add_average(self, result: RunResult, kind: str, step: int,
                    results: dict[tuple[str, str], Evaluation]) -> None:
        """Add an averaged model's evaluation to ``result`` as selection kind ``kind``.

        Stored like the final scores (English on its report half, so every strategy's English is
        the same items), as score rows of kind ``kind`` at ``step`` (the last step of training) and
        per-example rows in ``example_stats`` under split ``kind``: that table has no kind column,
        and readers of the ordinary split never see these rows.
        """
        for key, full in results.items():
            task, lang = key
            ev = self.stored(key, full)
            for metric, value in ev.scores.items():
                result.scores.append(Score(task, lang, EVAL_SPLIT, metric, value, step, kind))
                result.example_stats[(task, lang, kind, metric)] = ev.stats[metric]


def evaluate_sets(encoder: nn.Module, heads: dict[str, nn.Module], sets: list[EvalSet], ctx: RunContext,
                  clock: EvalClock | None = None) -> dict[tuple[str, str], Evaluation]:
    """Evaluate every set with its task's head: a task's sets in one pass (``runtime.eval_one_pass``)."""
    from xstilts.progress import progress_bar

    rt = ctx.cfg.runtime
    groups: dict[str, list[EvalSet]] = {}
    for s in sets:
        key = s.task.name if rt.eval_one_pass else f"{s.task.name}/{s.language}"
        groups.setdefault(key, []).append(s)
    found: dict[tuple[str, str], Evaluation] = {}
    started = time.perf_counter()
    with progress_bar("evaluating", len(sets), enabled=rt.progress) as advance:
        for group in groups.values():
            found.update(_evaluate_group(encoder, heads, group, ctx))
            advance(len(group))
    if clock is not None:
        clock.seconds += time.perf_counter() - started
        clock.tokens += sum(f["length"] for s in sets for f in s.features)
    return {(s.task.name, s.language): found[(s.task.name, s.language)] for s in sets}


def _evaluate_group(encoder: nn.Module, heads: dict[str, nn.Module], group: list[EvalSet],
                    ctx: RunContext) -> dict[tuple[str, str], Evaluation]:
    rt = ctx.cfg.runtime
    task = group[0].task
    kind: HeadKind = get_head_kind(task.head)
    evs = evaluate_many(encoder, heads[task.name], kind, task, [(s.examples, s.features) for s in group],
                        ctx.tokenizer.pad_token_id, rt.eval_batch_size, rt.bucket_by_length, rt.bf16,
                        rt.eval_workers)
    metrics = task.all_metrics()
    return {(s.task.name, s.language): Evaluation({m: ev.stats[m] for m in metrics if m in ev.stats}, ev.predictions)
            for s, ev in zip(group, evs, strict=True)}


def open_tracker(run: Run, ctx: RunContext, hp: TrainConfig) -> RunTracker | None:
    """The run's live tracker (``[runtime] log_with``), or None: named by run id, grouped by setting (and target)."""
    group = run.setting if run.target is None else f"{run.setting}->{run.target}"
    hparams = hp.model_dump()
    config = {"run_id": run.run_id, "phase": run.phase, "setting": run.setting, "target": run.target or "",
              "seed": run.seed, **hparams}
    return run_tracker(ctx.cfg.runtime.log_with, run.run_id, ctx.cfg.name, ctx.out_dir, group, config)
