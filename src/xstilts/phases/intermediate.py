"""Phase 2: fine-tune the pretrained encoder on English intermediate task(s).

All tasks of a setting train together (one head each, sampled by size); model selection uses
the mean of their English dev scores. The encoder is saved for every target to start from.
"""

from __future__ import annotations

import time

from xstilts.checkpoint import save_encoder
from xstilts.context import RunContext
from xstilts.featurize import load_features
from xstilts.heads import get_head_kind
from xstilts.models.loading import load_encoder
from xstilts.phases.evaluate import EvalHistory, evaluate_sets, load_eval_sets
from xstilts.plan import Run
from xstilts.store import RunResult
from xstilts.tasks import get_task
from xstilts.training.loop import Job, set_seed, train
from xstilts.training.speed import prepare_encoder


def run_intermediate(run: Run, ctx: RunContext) -> RunResult:
    hp = ctx.cfg.intermediate.train
    set_seed(run.seed)
    encoder = load_encoder(ctx.model_path)
    hidden = encoder.config.hidden_size
    jobs, heads, eval_sets = [], {}, []
    for name in run.tasks:
        task = get_task(name, ctx.cfg.intermediate.task_options.get(name))
        kind = get_head_kind(task.head)
        _, feats = load_features(task, "train", "en", ctx.data_dir, ctx.tokenizer, hp.max_length,
                                 hp.max_train_examples, ctx.cache_dir)
        head = kind.build(task, hidden)
        heads[task.name] = head
        jobs.append(Job(task.name, kind, head, feats))
        eval_sets += load_eval_sets(ctx, task, ["en"], hp.max_length, hp.max_eval_examples)

    speed = prepare_encoder(encoder, ctx.cfg.runtime,
                            [*[j.features for j in jobs], *[s.features for s in eval_sets]],
                            ctx.tokenizer.pad_token_id)
    history = EvalHistory(select=[(s.task.name, s.language) for s in eval_sets])
    started = time.perf_counter()
    outcome = train(encoder, jobs, hp, ctx.cfg.runtime, run.seed, ctx.tokenizer.pad_token_id,
                    lambda step: history.record(step, evaluate_sets(encoder, heads, eval_sets, ctx)),
                    describe=f"phase 2 {run.setting} seed {run.seed}")
    ckpt = save_encoder(encoder, ctx.checkpoint_dir(run.run_id))
    result = history.to_result(outcome.best_step, {})
    result.checkpoint = str(ckpt.parent)
    result.train_tokens, result.train_steps = outcome.train_tokens, outcome.steps
    result.extra = {"train_tokens_per_s": outcome.tokens_per_second, "train_s": outcome.train_seconds,
                    "phase_s": time.perf_counter() - started, "speed": speed.as_dict()}
    return result
