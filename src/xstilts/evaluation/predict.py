"""Inference over features: no autograd, length-sorted batches, outputs back in input order."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

from xstilts.faults import fault_point
from xstilts.heads.base import Evaluation, Feature, HeadKind
from xstilts.tasks.base import Example, Task
from xstilts.training.batching import eval_batches
from xstilts.training.speed import auto_eval_batch_size


def predict(encoder: nn.Module, head: nn.Module, kind: HeadKind, features: Sequence[Feature], pad_id: int,
            batch_size: int | None = None, bucket: bool = True, bf16: bool = False) -> list[np.ndarray]:
    """Per-feature outputs of ``head(encoder, batch)``, in the order of ``features``.

    ``batch_size`` None: :func:`~xstilts.training.speed.auto_eval_batch_size` for the encoder's device.
    """
    was_training = encoder.training
    encoder.eval()
    head.eval()
    out: list[np.ndarray | None] = [None] * len(features)
    lengths = [f["length"] for f in features]
    device_type = next(encoder.parameters()).device.type
    batch_size = batch_size or auto_eval_batch_size(device_type)
    budget = batch_size * 128 if bucket else None
    autocast = torch.autocast(device_type, dtype=torch.bfloat16) if bf16 else nullcontext()
    device = next(encoder.parameters()).device
    with torch.inference_mode(), autocast:
        for idx in eval_batches(lengths, batch_size, bucket, max_tokens=budget):
            batch = {k: v.to(device) for k, v in kind.collate([features[i] for i in idx], pad_id).items()}
            for i, o in zip(idx, kind.outputs(head(encoder, batch), batch), strict=True):
                out[i] = o
    if was_training:
        encoder.train()
        head.train()
    return out  # type: ignore[return-value]


def evaluate(encoder: nn.Module, head: nn.Module, kind: HeadKind, task: Task, examples: Sequence[Example],
             features: Sequence[Feature], pad_id: int, batch_size: int | None = None, bucket: bool = True,
             bf16: bool = False) -> Evaluation:
    """Predict and score one evaluation set."""
    return evaluate_many(encoder, head, kind, task, [(examples, features)], pad_id, batch_size, bucket, bf16)[0]


def evaluate_many(encoder: nn.Module, head: nn.Module, kind: HeadKind, task: Task,
                  sets: Sequence[tuple[Sequence[Example], Sequence[Feature]]], pad_id: int,
                  batch_size: int | None = None, bucket: bool = True, bf16: bool = False) -> list[Evaluation]:
    """Score several evaluation sets of one task (e.g. its languages) from a single prediction pass.

    Why one pass: every set sorted and batched on its own ends in a part-filled batch, and short
    sets make few full ones; the sets' features sorted together fill every batch but one (PAN-X,
    8 languages × 200 sentences: 1.1-1.3× the tokens/s on 2 CPU cores, benchmarks/RESULTS.md).
    Outputs are those of per-set prediction up to float rounding (other batch neighbours).
    """
    fault_point("evaluate")
    flat = [f for _, feats in sets for f in feats]
    outputs = predict(encoder, head, kind, flat, pad_id, batch_size, bucket, bf16)
    out, start = [], 0
    for examples, feats in sets:
        out.append(kind.evaluate(task, examples, feats, outputs[start: start + len(feats)]))
        start += len(feats)
    return out
