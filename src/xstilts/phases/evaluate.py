"""Evaluation sets of a run, evaluated at every evaluation step, and the history kept for
selection: curve scores for every step, per-example rows for the selected step."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from torch import nn

from xstilts.context import RunContext
from xstilts.evaluation.predict import evaluate
from xstilts.featurize import load_features
from xstilts.heads import Evaluation, Feature, HeadKind, get_head_kind
from xstilts.store import RunResult, Score
from xstilts.tasks.base import Example, Task

SPLIT = "eval"


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
        ex, feats = load_features(task, SPLIT, lang, ctx.data_dir, ctx.tokenizer, max_length, limit,
                                  ctx.cache_dir)
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
    """Evaluations by step; ``select`` names the (task, language) pairs whose mean picks the model."""

    select: list[tuple[str, str]]
    by_step: dict[int, dict[tuple[str, str], Evaluation]] = field(default_factory=dict)
    clock: EvalClock = field(default_factory=EvalClock)

    def record(self, step: int, results: dict[tuple[str, str], Evaluation]) -> float:
        self.by_step[step] = results
        chosen = [results[key].scores[_primary(key, results)] for key in self.select]
        return sum(chosen) / len(chosen)

    def to_result(self, best_step: int) -> RunResult:
        result = RunResult(selected_step=best_step)
        result.extra = {"eval_s": self.clock.seconds, "eval_tokens": self.clock.tokens,
                        "eval_tokens_per_s": self.clock.tokens_per_second}
        for step, results in sorted(self.by_step.items()):
            for (task, lang), ev in results.items():
                for metric, value in ev.scores.items():
                    result.scores.append(Score(task, lang, SPLIT, metric, value, step, "curve"))
                    if step == best_step:
                        result.scores.append(Score(task, lang, SPLIT, metric, value, step, "final"))
                        result.example_stats[(task, lang, SPLIT, metric)] = ev.stats[metric]
        return result


def _primary(key: tuple[str, str], results: dict[tuple[str, str], Evaluation]) -> str:
    scores = results[key].scores
    return next(iter(scores))


def evaluate_sets(encoder: nn.Module, heads: dict[str, nn.Module], sets: list[EvalSet], ctx: RunContext,
                  clock: EvalClock | None = None) -> dict[tuple[str, str], Evaluation]:
    """Evaluate every set with its task's head; primary metric first in each Evaluation."""
    from xstilts.progress import progress_bar

    rt = ctx.cfg.runtime
    out: dict[tuple[str, str], Evaluation] = {}
    started = time.perf_counter()
    with progress_bar("evaluating", len(sets), enabled=rt.progress) as advance:
        for s in sets:
            out[(s.task.name, s.language)] = _evaluate_one(encoder, heads, s, ctx)
            advance(1)
    if clock is not None:
        clock.seconds += time.perf_counter() - started
        clock.tokens += sum(f["length"] for s in sets for f in s.features)
    return out


def _evaluate_one(encoder: nn.Module, heads: dict[str, nn.Module], s: EvalSet, ctx: RunContext) -> Evaluation:
    rt = ctx.cfg.runtime
    kind: HeadKind = get_head_kind(s.task.head)
    ev = evaluate(encoder, heads[s.task.name], kind, s.task, s.examples, s.features,
                  ctx.tokenizer.pad_token_id, rt.eval_batch_size, rt.bucket_by_length, rt.bf16)
    return Evaluation({m: ev.stats[m] for m in s.task.all_metrics() if m in ev.stats})
