"""Phase 3: fine-tune on the English training set of a target task, evaluate zero-shot.

Starts from the phase-2 checkpoint (or the pretrained model for the baseline) with a fresh head.
At every evaluation step every language's eval set is scored (the curves, and per-example rows
of every step, that later analysis uses for oracle selection). The checkpoint is selected on the
selection half of English dev and English is reported on the other half, so the English score
that is reported is not the one that chose the checkpoint (:mod:`xstilts.phases.evaluate`).

With ``[target.selection] average`` the weights at every evaluated checkpoint also enter a running
average (:mod:`xstilts.training.averaging`), which is evaluated on every language after the
selected checkpoint is stored (and saved): its scores are rows of kind ``average-all`` /
``average-lastK`` beside the ``final`` ones.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

from xstilts.checkpoint import load_encoder_weights, save_encoder, save_head
from xstilts.context import RunContext
from xstilts.featurize import load_features
from xstilts.heads import get_head_kind
from xstilts.models.loading import load_encoder
from xstilts.phases.evaluate import EvalHistory, evaluate_sets, load_eval_sets, open_tracker
from xstilts.plan import Run
from xstilts.store import RunResult
from xstilts.training.averaging import WeightAverage
from xstilts.training.loop import Job, set_seed, train
from xstilts.training.speed import prepare_encoder


def run_target(run: Run, ctx: RunContext, parent_checkpoint: str | None = None) -> RunResult:
    assert run.target is not None
    hp = ctx.cfg.target.train_for(run.target)
    task = ctx.target_task(run.target)
    kind = get_head_kind(task.head)
    _, feats = load_features(task, "train", "en", ctx.tokenizer, hp.max_length,
                             hp.max_train_examples, ctx.cache_dir)
    eval_sets = load_eval_sets(ctx, task, run.languages, hp.max_length, hp.max_eval_examples)

    set_seed(run.seed)
    encoder = load_encoder(ctx.model_path, dropout=hp.dropout)
    if parent_checkpoint is not None:
        from pathlib import Path

        load_encoder_weights(encoder, Path(parent_checkpoint))
    head = kind.build(task, encoder.config.hidden_size, hp.dropout)
    heads = {task.name: head}
    speed = prepare_encoder(encoder, ctx.cfg.runtime, [feats, *[s.features for s in eval_sets]],
                            ctx.tokenizer.pad_token_id)

    history = EvalHistory(select=[(task.name, "en")], primary={task.name: task.metric}, hold_out=True,
                          keep_curve_stats=True, keep_predictions=ctx.cfg.runtime.write_predictions)
    sel = ctx.cfg.target.selection
    averager = WeightAverage([encoder, head], sel.average, sel.average_k) if sel.average else None

    def evaluate_step(step: int) -> float:
        if averager is not None:
            averager.update(step)
        return history.record(step, evaluate_sets(encoder, heads, eval_sets, ctx, history.clock))

    started = time.perf_counter()
    tracker = history.tracker = open_tracker(run, ctx, hp)
    with tracker or nullcontext():
        outcome = train(encoder, [Job(task.name, kind, head, feats)], hp, ctx.cfg.runtime, run.seed,
                        ctx.tokenizer.pad_token_id, evaluate_step,
                        tracker=tracker, describe=f"phase 3 {run.setting}→{run.target} seed {run.seed}",
                        on_best=history.keep_best)
    result = history.to_result(outcome.best_step)
    if ctx.cfg.runtime.write_predictions:
        history.write_predictions(eval_sets, outcome.best_step, ctx.predictions_dir(run.run_id),
                                  ctx.labels_dir(run.run_id))
    speed.thread_log += outcome.thread_log
    if ctx.cfg.runtime.save_target_checkpoints:  # encoder + head: what `xstilts export` rebuilds the model from
        directory = ctx.checkpoint_dir(run.run_id)
        save_head(head, {"kind": task.head, "task": task.name, "labels": list(task.labels),
                         "task_options": task.options, "max_length": hp.max_length}, directory)
        result.checkpoint = str(save_encoder(encoder, directory).parent)
    if averager is not None:  # after the selected weights are saved: the average replaces them
        averager.load_into()
        history.add_average(result, averager.name, outcome.steps,
                            evaluate_sets(encoder, heads, eval_sets, ctx, history.clock))
        result.extra["average"] = {"kind": averager.name, "steps": averager.steps, "count": averager.count}
    result.train_tokens, result.train_steps = outcome.train_tokens, outcome.steps
    n_eval_tokens = sum(f["length"] for s in eval_sets for f in s.features)
    result.extra |= {"train_tokens_per_s": outcome.tokens_per_second, "train_s": outcome.train_seconds,
                    "phase_s": time.perf_counter() - started, "train_loss": outcome.losses, "train_lr": outcome.lrs,
                    "evaluations": outcome.evaluations,
                    "eval_tokens_per_evaluation": n_eval_tokens, "speed": speed.as_dict()}
    return result
