"""Phase 2: fine-tune the pretrained encoder on English intermediate task(s).

All tasks of a setting train together (one head each, drawn by ``intermediate.sampler``; a task's
training set is capped by ``task_caps`` and may include translated files, see
:mod:`xstilts.tasks.translations`); model selection uses the mean of their English dev scores.
With ``mlm_rate`` > 0, masked-LM batches on target-language text are mixed in
(:mod:`xstilts.training.mlm`). The encoder is saved for every target to start from.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

from xstilts.checkpoint import save_encoder
from xstilts.context import RunContext
from xstilts.featurize import load_features
from xstilts.heads import get_head_kind
from xstilts.models.loading import load_encoder
from xstilts.phases.evaluate import EvalHistory, evaluate_sets, load_eval_sets, open_tracker
from xstilts.plan import Run
from xstilts.store import RunResult
from xstilts.tasks.translations import translation_variants
from xstilts.training.loop import Job, set_seed, train
from xstilts.training.mlm import setup_mlm
from xstilts.training.speed import prepare_encoder


def run_intermediate(run: Run, ctx: RunContext) -> RunResult:
    icfg = ctx.cfg.intermediate
    hp = icfg.train
    set_seed(run.seed)
    encoder = load_encoder(ctx.model_path, dropout=hp.dropout)
    hidden = encoder.config.hidden_size
    jobs, heads, eval_sets = [], {}, []
    for name in run.tasks:
        task = ctx.intermediate_task(name)
        kind = get_head_kind(task.head)
        limit = icfg.task_caps.get(name, hp.max_train_examples)
        feats = [f for _, variant in translation_variants(name, icfg.task_options.get(name), ctx.data_dir)
                 for f in load_features(variant, "train", "en", ctx.tokenizer, hp.max_length,
                                        limit, ctx.cache_dir)[1]]
        eval_sets += load_eval_sets(ctx, task, ["en"], hp.max_length, hp.max_eval_examples)
        head = kind.build(task, hidden, hp.dropout)  # after reading: some label sets come from data (CCG)
        heads[task.name] = head
        jobs.append(Job(task.name, kind, head, feats))

    runtime = ctx.cfg.runtime
    mlm = setup_mlm(icfg, encoder, ctx.tokenizer, ctx.data_dir, ctx.cache_dir, run.seed, hp.batch_size,
                    hp.max_length)
    if mlm is not None:
        jobs[0].head = heads[jobs[0].name] = mlm.attach(jobs[0].head)
        runtime = runtime.model_copy(update={"trim_vocab": False})  # MLM predicts over the full vocabulary

    speed = prepare_encoder(encoder, runtime,
                            [*[j.features for j in jobs], *[s.features for s in eval_sets]],
                            ctx.tokenizer.pad_token_id)
    history = EvalHistory(select=[(s.task.name, s.language) for s in eval_sets],
                          primary={s.task.name: s.task.metric for s in eval_sets})
    started = time.perf_counter()
    tracker = history.tracker = open_tracker(run, ctx, hp)
    with tracker or nullcontext():
        outcome = train(encoder, jobs, hp, runtime, run.seed, ctx.tokenizer.pad_token_id,
                        lambda step: history.record(
                            step, evaluate_sets(encoder, heads, eval_sets, ctx, history.clock)),
                        sampler=icfg.sampler, temperature=icfg.temperature,
                        extra_loss=mlm.extra_loss() if mlm is not None else None,
                        tracker=tracker, describe=f"phase 2 {run.setting} seed {run.seed}")
    ckpt = save_encoder(encoder, ctx.checkpoint_dir(run.run_id))
    result = history.to_result(outcome.best_step)
    speed.thread_log += outcome.thread_log
    result.checkpoint = str(ckpt.parent)
    result.train_tokens, result.train_steps = outcome.train_tokens, outcome.steps
    result.extra |= {"train_tokens_per_s": outcome.tokens_per_second, "train_s": outcome.train_seconds,
                    "phase_s": time.perf_counter() - started, "train_loss": outcome.losses, "train_lr": outcome.lrs,
                    "speed": speed.as_dict()}
    if mlm is not None:
        result.extra["mlm_steps"] = mlm.mlm_steps
    return result
