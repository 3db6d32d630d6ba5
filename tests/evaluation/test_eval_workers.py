"""Evaluation batches predicted on several threads at once equal one thread's, in input order."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from xstilts.context import RunContext
from xstilts.evaluation.predict import predict
from xstilts.models import first_token
from xstilts.phases.evaluate import load_eval_sets
from xstilts.training.speed import auto_eval_workers

pytestmark = pytest.mark.usefixtures("one_thread")


def _setup(ctx: RunContext, fresh_model, task_name: str):
    task, kind, encoder, head = fresh_model(task_name)
    feats = [f for s in load_eval_sets(ctx, task, ("en", "de", "sw"), 64, None) for f in s.features]
    return kind, encoder, head, feats


@pytest.mark.parametrize(("task_name", "first"), [("xnli", True), ("xnli", False), ("panx", False)])
@pytest.mark.parametrize("bf16", [False, True])
def test_workers_predict_what_one_thread_predicts(ctx: RunContext, fresh_model, task_name: str, first: bool,
                                                 bf16: bool) -> None:
    kind, encoder, head, feats = _setup(ctx, fresh_model, task_name)
    if first:  # the last layer's first-token shortcut, asked for by every worker thread at once
        first_token.install(encoder, train="no")
    pad = ctx.tokenizer.pad_token_id
    encoder.train()
    one = predict(encoder, head, kind, feats, pad, batch_size=3, bf16=bf16, workers=1)
    many = predict(encoder, head, kind, feats, pad, batch_size=3, bf16=bf16, workers=3)
    again = predict(encoder, head, kind, feats, pad, batch_size=3, bf16=bf16, workers=3)
    for a, b in zip(many, again, strict=True):  # whichever worker took a batch, its outputs are the same
        np.testing.assert_array_equal(a, b)
    assert encoder.training and head.training  # the modes come back
    assert torch.get_num_threads() == 1  # the caller's thread count is restored
    assert len(many) == len(feats) and all(o is not None for o in many)
    tol = {"rtol": 2e-2, "atol": 2e-2} if bf16 else {"rtol": 1e-4, "atol": 1e-5}
    for a, b in zip(one, many, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, **tol)


def test_a_failing_worker_fails_the_prediction_and_restores_threads(ctx: RunContext, fresh_model) -> None:
    kind, encoder, head, feats = _setup(ctx, fresh_model, "xnli")
    calls = {"n": 0}
    lock = threading.Lock()
    forward = head.forward

    def broken(enc, batch):
        with lock:
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("worker broke")
        return forward(enc, batch)

    head.forward = broken
    with pytest.raises(RuntimeError, match="worker broke"):
        predict(encoder, head, kind, feats, ctx.tokenizer.pad_token_id, batch_size=2, workers=2)
    assert torch.get_num_threads() == 1
    assert calls["n"] < len(feats) // 2  # the other worker stopped instead of predicting the rest


def test_auto_workers_follow_the_thread_count() -> None:
    assert auto_eval_workers("cpu") == torch.get_num_threads() == 1  # the one_thread fixture
    assert auto_eval_workers("cuda") == 1
    torch.set_num_threads(2)
    try:
        assert auto_eval_workers("cpu", 8) == 2
        assert auto_eval_workers("cpu", 7) == 1  # too few batches to split
        assert auto_eval_workers("cuda", 100) == 1
    finally:
        torch.set_num_threads(1)


def test_the_pool_threads_keep_one_thread_each_and_the_caller_its_count() -> None:
    """Set once when the pool starts, so evaluations leave the caller's thread count alone."""
    import xstilts.evaluation.predict as module

    torch.set_num_threads(2)
    try:
        pool = module._pool(2)
        assert module._pool(2) is pool and module._pool(1) is pool  # kept between calls
        assert torch.get_num_threads() == 2
        barrier = threading.Barrier(2, timeout=30)

        def count() -> int:
            barrier.wait()  # two tasks at once: both threads answer
            return torch.get_num_threads()

        assert [t.result() for t in [pool.submit(count) for _ in range(2)]] == [1, 1]
    finally:
        torch.set_num_threads(1)
