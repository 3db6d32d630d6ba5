"""The training loop's gradient clipping: accelerate's norm and clipping, to the bit, without a pass
that multiplies by one."""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator
from torch import nn

from xstilts.training.loop import clip_gradients


def _grads(scale: float) -> list[nn.Parameter]:
    torch.manual_seed(0)
    params = [nn.Parameter(torch.zeros(shape)) for shape in ((7, 5), (300,), (3, 4, 6))]
    for p in params:
        p.grad = torch.randn(p.shape) * scale
    params.append(nn.Parameter(torch.zeros(2)))  # one without a gradient
    return params


@pytest.mark.parametrize("scale", [1e-3, 0.05, 10.0])
def test_the_norm_and_the_gradients_are_accelerates(scale: float) -> None:
    accelerator = Accelerator(cpu=True)
    expected, got = _grads(scale), _grads(scale)
    norm = accelerator.clip_grad_norm_(expected, 1.0)
    assert torch.equal(clip_gradients(accelerator, got, 1.0), norm)
    for a, b in zip(expected, got, strict=True):
        assert (a.grad is None and b.grad is None) or torch.equal(a.grad, b.grad)
    assert (float(norm) > 1.0) == (scale == 10.0)  # both sides of the bound are covered


def test_gradients_within_the_bound_are_not_multiplied(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    multiply = torch._foreach_mul_

    def counted(*args, **kwargs):
        calls.append(1)
        return multiply(*args, **kwargs)

    monkeypatch.setattr(torch, "_foreach_mul_", counted)
    accelerator = Accelerator(cpu=True)
    clip_gradients(accelerator, _grads(1e-3), 1.0)
    assert calls == []
    clip_gradients(accelerator, _grads(10.0), 1.0)
    assert calls == [1]
