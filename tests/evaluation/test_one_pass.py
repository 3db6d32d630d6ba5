"""All of a task's evaluation languages predicted in one pass score like one pass per language."""

from __future__ import annotations

import numpy as np
import pytest

from xstilts.context import RunContext
from xstilts.evaluation.predict import evaluate, evaluate_many, predict
from xstilts.heads import get_head_kind
from xstilts.phases.evaluate import EvalClock, evaluate_sets, load_eval_sets
from xstilts.tasks import get_task
from xstilts.training.batching import eval_batches

pytestmark = pytest.mark.usefixtures("one_thread")

LANGS = ("en", "de", "sw")


@pytest.mark.parametrize("task_name", ["panx", "xnli"])
def test_one_pass_scores_equal_per_language_passes(ctx: RunContext, fresh_model, task_name: str) -> None:
    task, kind, encoder, head = fresh_model(task_name)
    sets = load_eval_sets(ctx, task, LANGS, 64, None)
    pad = ctx.tokenizer.pad_token_id
    # batches of 4 over ~12-60 items per language: several part-filled batches per language alone,
    # so the one pass really batches other neighbours together
    together = evaluate_many(encoder, head, kind, task, [(s.examples, s.features) for s in sets], pad, batch_size=4)
    assert len(together) == len(sets)
    flat_together = predict(encoder, head, kind, [f for t in sets for f in t.features], pad, batch_size=4)
    start = 0
    for s, ev in zip(sets, together, strict=True):
        alone = evaluate(encoder, head, kind, task, s.examples, s.features, pad, batch_size=4)
        assert ev.scores == pytest.approx(alone.scores, abs=1e-9), s.language
        for metric, rows in alone.stats.items():
            np.testing.assert_array_equal(ev.stats[metric], rows)
        flat_alone = predict(encoder, head, kind, s.features, pad, batch_size=4)
        for a, b in zip(flat_alone, flat_together[start: start + len(s.features)], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        start += len(s.features)


def test_the_pass_mixes_languages_into_fuller_batches(ctx: RunContext) -> None:
    """The reason for the switch: fewer batches than the languages need one by one."""
    task = get_task("xnli", data_dir=ctx.data_dir)
    sets = load_eval_sets(ctx, task, LANGS, 64, None)
    lengths = [[f["length"] for f in s.features] for s in sets]
    alone = sum(len(eval_batches(ls, 7)) for ls in lengths)
    together = eval_batches([n for ls in lengths for n in ls], 7)
    assert len(together) < alone
    assert len({len(b) for b in together[:-1]}) == 1  # every batch but the last is full


@pytest.mark.parametrize("one_pass", [True, False])
def test_evaluate_sets_keeps_every_set_in_order(ctx: RunContext, fresh_model, one_pass: bool) -> None:
    ctx = RunContext(ctx.cfg.model_copy(update={"runtime": ctx.cfg.runtime.model_copy(
        update={"eval_one_pass": one_pass, "eval_batch_size": 4, "progress": False})}),
        ctx.out_dir, ctx.data_dir, ctx.model_path, ctx.cache_dir)
    panx, kind_p, encoder, head_p = fresh_model("panx")
    xnli = get_task("xnli", data_dir=ctx.data_dir)
    head_x = get_head_kind(xnli.head).build(xnli, encoder.config.hidden_size, 0.1)
    sets = load_eval_sets(ctx, xnli, ["de", "en"], 64, None) + load_eval_sets(ctx, panx, ["sw", "en"], 64, None)
    clock = EvalClock()
    out = evaluate_sets(encoder, {"panx": head_p, "xnli": head_x}, sets, ctx, clock)
    assert list(out) == [("xnli", "de"), ("xnli", "en"), ("panx", "sw"), ("panx", "en")]
    for s in sets:
        head = head_p if s.task.name == "panx" else head_x
        alone = evaluate(encoder, head, get_head_kind(s.task.head), s.task, s.examples, s.features,
                         ctx.tokenizer.pad_token_id, batch_size=4)
        assert out[(s.task.name, s.language)].scores == pytest.approx(alone.scores, abs=1e-9)
    assert clock.tokens == sum(f["length"] for s in sets for f in s.features) and clock.seconds > 0
