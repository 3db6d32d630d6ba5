"""Inference over features: no autograd, length-sorted batches, outputs back in input order."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

from xstilts.faults import fault_point
from xstilts.heads.base import Evaluation, Feature, HeadKind
from xstilts.tasks.base import Example, Task
from xstilts.training.batching import eval_batches
from xstilts.training.speed import auto_eval_batch_size, auto_eval_workers

_POOL: tuple[int, ThreadPoolExecutor] | None = None  # (its size, the pool)


def _pool(workers: int) -> ThreadPoolExecutor:
    """Evaluation threads, one intra-op thread each, kept between calls.

    A thread takes PyTorch's (process-wide) thread count at its first operation and keeps it, so
    the count is lowered to 1 only while a new pool's threads start, not around every evaluation:
    the caller's count stays untouched for whatever else runs meanwhile.
    """
    global _POOL
    if _POOL is not None and _POOL[0] >= workers:
        return _POOL[1]
    if _POOL is not None:
        _POOL[1].shutdown(wait=True)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="xstilts-eval")
    started = threading.Barrier(workers, timeout=60)

    def start() -> int:
        started.wait()  # every task on its own thread, so each thread starts here
        return torch.get_num_threads()  # the first operation: takes the count of 1

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for task in [pool.submit(start) for _ in range(workers)]:
            task.result()
    finally:
        torch.set_num_threads(threads)
    _POOL = (workers, pool)
    return pool


def predict(encoder: nn.Module, head: nn.Module, kind: HeadKind, features: Sequence[Feature], pad_id: int,
            batch_size: int | None = None, bucket: bool = True, bf16: bool = False,
            workers: int | None = None) -> list[np.ndarray]:
    """Per-feature outputs of ``head(encoder, batch)``, in the order of ``features``.

    ``batch_size`` None: :func:`~xstilts.training.speed.auto_eval_batch_size` for the encoder's device.
    ``workers`` None: :func:`~xstilts.training.speed.auto_eval_workers` (on a CPU, one batch per
    intra-op thread at a time, each on one thread); outputs equal one worker's up to float rounding.

    Gradients are off with ``no_grad``, not ``inference_mode``: under ``inference_mode`` autocast
    does not cache its bf16 copies of the weights, so it casts every weight again for every batch
    (about 6 % of bf16 evaluation time on the default model, benchmarks/RESULTS.md).
    """
    was_training = encoder.training
    encoder.eval()
    head.eval()
    out: list[np.ndarray | None] = [None] * len(features)
    lengths = [f["length"] for f in features]
    device = next(encoder.parameters()).device
    batch_size = batch_size or auto_eval_batch_size(device.type)
    budget = batch_size * 128 if bucket else None
    planned = eval_batches(lengths, batch_size, bucket, max_tokens=budget)
    batches = iter(planned)
    taking, failed = threading.Lock(), threading.Event()

    def work() -> None:
        # grad mode and autocast are per thread; one autocast block per worker keeps its weight casts
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
        with torch.no_grad(), autocast:
            while not failed.is_set():
                with taking:
                    idx = next(batches, None)
                if idx is None:
                    return
                try:
                    batch = {k: v.to(device) for k, v in kind.collate([features[i] for i in idx], pad_id).items()}
                    for i, o in zip(idx, kind.outputs(head(encoder, batch), batch), strict=True):
                        out[i] = o
                except BaseException:
                    failed.set()  # the other workers stop at their next batch
                    raise

    workers = workers or auto_eval_workers(device.type, len(planned))
    try:
        if workers == 1:
            work()
        else:
            pool = _pool(workers)
            try:
                for done in [pool.submit(work) for _ in range(workers)]:
                    done.result()  # re-raises a worker's exception here
            except BaseException:  # also Ctrl-C here: the workers stop after their current batch
                failed.set()
                raise
    finally:
        if was_training:
            encoder.train()
            head.train()
    return out  # type: ignore[return-value]


def evaluate(encoder: nn.Module, head: nn.Module, kind: HeadKind, task: Task, examples: Sequence[Example],
             features: Sequence[Feature], pad_id: int, batch_size: int | None = None, bucket: bool = True,
             bf16: bool = False, workers: int | None = None) -> Evaluation:
    """Predict and score one evaluation set."""
    return evaluate_many(encoder, head, kind, task, [(examples, features)], pad_id, batch_size, bucket, bf16,
                         workers)[0]


def evaluate_many(encoder: nn.Module, head: nn.Module, kind: HeadKind, task: Task,
                  sets: Sequence[tuple[Sequence[Example], Sequence[Feature]]], pad_id: int,
                  batch_size: int | None = None, bucket: bool = True, bf16: bool = False,
                  workers: int | None = None) -> list[Evaluation]:
    """Score several evaluation sets of one task (e.g. its languages) from a single prediction pass.

    Why one pass: every set sorted and batched on its own ends in a part-filled batch, and short
    sets make few full ones; the sets' features sorted together fill every batch but one (PAN-X,
    8 languages × 200 sentences: 1.1-1.3× the tokens/s on 2 CPU cores, benchmarks/RESULTS.md).
    Outputs are those of per-set prediction up to float rounding (other batch neighbours).
    """
    fault_point("evaluate")
    flat = [f for _, feats in sets for f in feats]
    outputs = predict(encoder, head, kind, flat, pad_id, batch_size, bucket, bf16, workers)
    out, start = [], 0
    for examples, feats in sets:
        out.append(kind.evaluate(task, examples, feats, outputs[start: start + len(feats)]))
        start += len(feats)
    return out
