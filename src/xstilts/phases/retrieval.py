"""Phase 3 for retrieval targets (Tatoeba, BUCC): no training, embed and score.

XTREME and Phang et al. score retrieval on the encoder as phase 2 left it (or on the pretrained
model for the ``none`` baseline): a target run whose task has head kind ``retrieval`` loads that
encoder, embeds every language's sentences with the task's options (layer, pooling, prefix; see
:mod:`xstilts.evaluation.embed`) and writes the scores as a finished run would, at step 0 (curve and
final alike, so curve-based analyses see one point). Sentences are cut at the target's
``max_length`` and capped at ``max_eval_examples`` per language, like every evaluation set.
With ``runtime.write_predictions`` a task that returns predictions (Tatoeba; BUCC does not yet)
has them written in XTREME's submission layout, gold labels beside them.
"""

from __future__ import annotations

import time
from pathlib import Path

from xstilts.context import RunContext
from xstilts.distributed import process_device
from xstilts.evaluation.embed import embed_sentences
from xstilts.evaluation.submission import XTREME_NAMES, write_gold, write_predictions
from xstilts.metrics.stats import score_from_stats
from xstilts.phases.evaluate import open_tracker
from xstilts.plan import Run
from xstilts.store import RunResult, Score
from xstilts.tasks._retrieval import RetrievalTask
from xstilts.tasks.base import EVAL_SPLIT


def run_retrieval(run: Run, ctx: RunContext, parent_checkpoint: str | None = None) -> RunResult:
    """Score one retrieval target on the phase-2 checkpoint (or the pretrained model)."""
    from xstilts.checkpoint import load_encoder_weights
    from xstilts.models.loading import load_encoder

    assert run.target is not None
    task = ctx.target_task(run.target)
    if not isinstance(task, RetrievalTask):
        raise TypeError(f"{run.target} is not a retrieval task")
    hp = ctx.cfg.target.train_for(run.target)
    opts = task.embedding_options()
    started = time.perf_counter()
    encoder = load_encoder(ctx.model_path)
    if parent_checkpoint is not None:
        load_encoder_weights(encoder, Path(parent_checkpoint))
    encoder.to(process_device())
    n_sentences = 0

    def embed(texts, language: str):
        nonlocal n_sentences
        n_sentences += len(texts)
        return embed_sentences(encoder, ctx.tokenizer, texts, layer=opts["layer"], pool=opts["pool"],
                               prefix=opts["prefix"], max_length=hp.max_length, batch_size=opts["batch_size"])

    result = RunResult(selected_step=0)
    per_language: dict[str, dict] = {}
    for lang in run.languages:
        if lang == "en":
            continue  # retrieval is always xx against English
        res = task.evaluate_embeddings(embed, lang, hp.max_eval_examples)
        for metric in task.all_metrics():
            rows = res.stats[metric]
            value = score_from_stats(metric, rows)
            result.scores.append(Score(task.name, lang, EVAL_SPLIT, metric, value, 0, "curve"))
            result.scores.append(Score(task.name, lang, EVAL_SPLIT, metric, value, 0, "final"))
            result.example_stats[(task.name, lang, EVAL_SPLIT, metric)] = rows
        per_language[lang] = res.extra
        if ctx.cfg.runtime.write_predictions and res.predictions is not None and task.name in XTREME_NAMES:
            write_gold(ctx.labels_dir(run.run_id), task, lang, hp.max_eval_examples)
            write_predictions(ctx.predictions_dir(run.run_id), task, lang, None, res.predictions)
    tracker = open_tracker(run, ctx, hp)
    if tracker is not None:  # live tracking: the scores, at step 0 as stored
        from xstilts.training.loop import make_accelerator

        with tracker:
            tracker.start(make_accelerator(ctx.cfg.runtime, 1, tracker))
            tracker.log_scores(0, {(s.task, s.language, s.metric): s.value for s in result.scores
                                   if s.kind == "final"})
    result.extra = {"phase_s": time.perf_counter() - started, "sentences_embedded": n_sentences,
                    "retrieval": {"layer": opts["layer"], "pool": opts["pool"], "prefix": opts["prefix"],
                                  "per_language": per_language}}
    return result
