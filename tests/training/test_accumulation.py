"""Gradient accumulation and mixed precision through Accelerate, on the tiny model.

Accumulating 2 micro-batches of 4 must give the optimizer the gradient of one batch of 8 (the
same 8 sentences: without length bucketing one epoch's permutation is cut into the same halves).
Adam hides gradient scale, so the test compares the gradients the optimizer sees, caught with a
global optimizer step hook, as well as the weights after the update.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from xstilts.config import RuntimeConfig, TrainConfig
from xstilts.featurize import load_features
from xstilts.heads import get_head_kind
from xstilts.models.loading import load_encoder, load_tokenizer
from xstilts.tasks import get_task
from xstilts.training.loop import Job, make_accelerator, set_seed, train


@cache
def _tokenizer(model: Path):  # loading XLM-R's 250k-piece tokenizer costs seconds; load it once
    return load_tokenizer(str(model))


@cache
def _one_update(model: Path, data: Path, batch_size: int, accum: int, n_examples: int = 8,
                mixed_precision: str | None = None,
                ) -> tuple[list[torch.Tensor], list[torch.Tensor], int, int]:
    """Gradients seen by the optimizer at its first step, weights after it, optimizer steps, loop steps."""
    task = get_task("sick", data_dir=data)
    kind = get_head_kind(task.head)
    tok = _tokenizer(model)
    _, feats = load_features(task, "train", "en", tok, 32, n_examples)
    assert len(feats) == n_examples
    set_seed(0)
    encoder = load_encoder(str(model), dropout=0.0)  # dropout masks differ between one batch of 8 and two of 4
    head = kind.build(task, encoder.config.hidden_size, 0.0)
    hp = TrainConfig(lr=1e-2, batch_size=batch_size, grad_accum_steps=accum, max_steps=1, warmup_ratio=0.0,
                     weight_decay=0.0, max_grad_norm=1e6)
    runtime = RuntimeConfig(bucket_by_length=False, progress=False, mixed_precision=mixed_precision)
    seen: list[list[torch.Tensor]] = []

    def capture(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        seen.append([p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
                     for g in optimizer.param_groups for p in g["params"]])

    hook = register_optimizer_step_pre_hook(capture)
    try:
        outcome = train(encoder, [Job("sick", kind, head, feats)], hp, runtime, seed=0,
                        pad_id=tok.pad_token_id, evaluate=lambda step: 0.0)
    finally:
        hook.remove()
    weights = [p.detach().clone() for m in (encoder, head) for p in m.parameters()]
    return seen[0], weights, len(seen), outcome.steps


def test_accumulating_two_batches_of_4_equals_one_batch_of_8(tiny_model: Path, mini_data: Path) -> None:
    grads8, weights8, updates8, steps8 = _one_update(tiny_model, mini_data, batch_size=8, accum=1)
    grads4x2, weights4x2, updates4x2, steps4x2 = _one_update(tiny_model, mini_data, batch_size=4, accum=2)
    assert updates8 == updates4x2 == 1 and steps8 == steps4x2 == 1  # one optimizer update, not two
    assert len(grads8) == len(grads4x2)
    assert sum(float(g.abs().sum()) for g in grads8) > 0
    for a, b in zip(grads8, grads4x2, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    for a, b in zip(weights8, weights4x2, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    # the control: half the batch without accumulation gives a different gradient
    grads4, _, _, _ = _one_update(tiny_model, mini_data, batch_size=4, accum=1)
    assert any(not torch.allclose(a, b, rtol=1e-3, atol=1e-5) for a, b in zip(grads8, grads4, strict=True))


def test_epochs_count_optimizer_updates(tiny_model: Path, mini_data: Path) -> None:
    """One epoch of 8 examples is 2 updates at batch 4, but 1 update at batch 4 × accumulation 2."""
    task = get_task("sick", data_dir=mini_data)
    kind = get_head_kind(task.head)
    tok = _tokenizer(tiny_model)
    _, feats = load_features(task, "train", "en", tok, 32, 8)
    steps = {}
    for accum in (1, 2):
        encoder = load_encoder(str(tiny_model))
        hp = TrainConfig(lr=1e-3, batch_size=4, grad_accum_steps=accum, epochs=1, warmup_ratio=0.0)
        evals: list[int] = []
        out = train(encoder, [Job("sick", kind, kind.build(task, encoder.config.hidden_size, 0.1), feats)], hp,
                    RuntimeConfig(progress=False), seed=0, pad_id=tok.pad_token_id,
                    evaluate=lambda step, evals=evals: evals.append(step) or 0.0)
        steps[accum] = (out.steps, evals, out.train_tokens)
    assert steps[1][:2] == (2, [2])
    assert steps[2][:2] == (1, [1])
    assert steps[1][2] == steps[2][2] == sum(f["length"] for f in feats)  # every example seen once


@pytest.mark.parametrize(("options", "expected"), [
    ({}, "no"), ({"bf16": True}, "bf16"), ({"mixed_precision": "bf16"}, "bf16"),
    ({"mixed_precision": "fp16"}, "fp16"), ({"mixed_precision": "no"}, "no"),
])
def test_precision_reaches_the_accelerator(options: dict, expected: str) -> None:
    runtime = RuntimeConfig(**options)
    assert runtime.precision == expected
    accelerator = make_accelerator(runtime, grad_accum_steps=3)
    assert accelerator.mixed_precision == expected
    assert accelerator.gradient_accumulation_steps == 3
    assert runtime.bf16 == (expected == "bf16")  # the spelling evaluation and run ids read


def test_bf16_training_step_runs_on_cpu(tiny_model: Path, mini_data: Path) -> None:
    grads, weights, updates, _ = _one_update(tiny_model, mini_data, batch_size=4, accum=2,
                                             mixed_precision="bf16")
    grads32, _, _, _ = _one_update(tiny_model, mini_data, batch_size=4, accum=2)
    assert updates == 1 and all(torch.isfinite(w).all() for w in weights)
    # autocast really ran in bf16: gradients are close to, but not bit-identical with, fp32's
    assert any(not torch.equal(a, b) for a, b in zip(grads, grads32, strict=True))
    flat = torch.cat([g.flatten() for g in grads])
    flat32 = torch.cat([g.flatten() for g in grads32])
    assert torch.nn.functional.cosine_similarity(flat, flat32, dim=0) > 0.9
