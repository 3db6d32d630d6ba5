"""PyTorch's own CPU dropout masks, drawn faster (``runtime.same_dropout``, default on): equal bit for bit.

Why: where PyTorch's CPU ``bernoulli_`` takes its generic path (every CPU but Intel's, whose MKL
path draws otherwise), ``nn.Dropout`` draws one 64-bit Mersenne-Twister number per unit, turns it
into a double in [0, 1) and compares it with ``1 - p``, element by element on one thread: 17 % of
a bf16 XNLI training step on the 2-core Zen 4 machine (benchmarks/RESULTS.md). ``random_`` over the
full int64 range makes the same 64-bit draws in the same order in about half the time, and the
comparison becomes an integer test on their low 53 bits. The draws go through a small int64
buffer, a slice at a time, so they stay in cache (one int64 tensor the size of the activation
gave back what the draws saved). Kept units are scaled by the very number PyTorch's noise tensor
holds, so outputs, gradients and the generator's state afterwards all equal ``nn.Dropout``'s
(tests/models/test_same_dropout.py): the switch is not in run ids.

Where that equality is not certain -- another device, a non-contiguous input, or a CPU whose
``bernoulli_`` draws otherwise (found by :func:`draws_match`, once per process) -- the module is
``nn.Dropout`` itself. Attention-probability dropout inside SDPA is not a module and keeps its
own draws (writing that attention out cost more than the draws save).
"""

from __future__ import annotations

import functools
import math
import threading
from typing import Any

import torch
from torch import nn

_LOW_BITS = (1 << 53) - 1  # the bits of a 64-bit draw that bernoulli_'s double in [0, 1) is made of
SLICE = 1 << 17  # units drawn at a time: a 1 MiB int64 buffer
_BUFFERS = threading.local()  # one buffer per thread: evaluation and runs may share a process


def keep_below(p: float) -> int:
    """Units whose low 53 bits are below this are kept: ``m / 2**53 < 1 - p`` for an integer ``m``."""
    return math.ceil((1.0 - p) * 2.0 ** 53)  # exact: scaling a double by a power of two


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, generator: torch.Generator | None = None,
              slice_units: int = SLICE) -> torch.Tensor:
    """A contiguous boolean mask of ``shape``: what ``torch.empty(shape).bernoulli_(1 - p)`` keeps,
    consuming the CPU generator exactly as it does (where :func:`draws_match`)."""
    keep = torch.empty(shape, dtype=torch.bool)
    flat, n, below = keep.view(-1), keep.numel(), keep_below(p)
    buffer = getattr(_BUFFERS, "words", None)
    if buffer is None or buffer.numel() < slice_units:
        buffer = _BUFFERS.words = torch.empty(slice_units, dtype=torch.int64)
    for start in range(0, n, slice_units):
        words = buffer[: min(slice_units, n - start)]
        words.random_(-(1 << 63), None, generator=generator)  # one full 64-bit draw each, in order
        torch.lt(words.bitwise_and_(_LOW_BITS), below, out=flat[start: start + words.numel()])
    return keep


@functools.cache
def scale_for(p: float, dtype: torch.dtype) -> float:
    """What PyTorch's dropout multiplies kept units by: its noise, 1 divided by ``1 - p`` in ``dtype``."""
    return torch.ones(64, dtype=dtype).div_(1.0 - p)[0].item()


@functools.cache
def draws_match() -> bool:
    """Whether this process's CPU ``bernoulli_`` draws what :func:`keep_mask` reproduces (its generic path)."""
    drawn = []
    for way in ("bernoulli", "words"):
        generator = torch.Generator().manual_seed(20261203)
        if way == "bernoulli":
            kept = torch.empty(5003).bernoulli_(0.9, generator=generator).bool()
        else:
            kept = keep_mask((5003,), 0.1, generator, slice_units=1024)  # several slices
        drawn.append((kept, generator.get_state()))
    (a, state_a), (b, state_b) = drawn
    return torch.equal(a, b) and torch.equal(state_a, state_b)


class _Scaled(torch.autograd.Function):
    """``x * keep * scale``, keeping the one-byte mask for backward rather than a float noise tensor."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x.mul(keep).mul_(scale)  # ×1 or ×0 is exact, then one rounding, as PyTorch's x * noise

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (keep,) = ctx.saved_tensors
        return grad.mul(keep).mul_(ctx.scale), None, None


def applies(x: torch.Tensor, p: float) -> bool:
    """Whether :func:`same_dropout` draws ``x``'s mask itself (else it is ``F.dropout``)."""
    return (0.0 < p < 1.0 and x.device.type == "cpu" and x.is_floating_point() and x.is_contiguous()
            and x.numel() > 0 and draws_match())


def same_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``torch.nn.functional.dropout(x, p, training)``, equal bit for bit, the mask drawn by :func:`keep_mask`."""
    if not training or p == 0.0:
        return x
    if not applies(x, p):
        return torch.nn.functional.dropout(x, p, True)
    return _Scaled.apply(x, keep_mask(x.shape, p), scale_for(p, x.dtype))


class SameDropout(nn.Dropout):
    """``nn.Dropout`` (a subclass: same ``p``, same checkpoints) whose forward is :func:`same_dropout`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            return super().forward(x)
        return same_dropout(x, self.p, self.training)


def use_same_dropout(model: nn.Module) -> int:
    """Swap every plain ``nn.Dropout`` in ``model`` for :class:`SameDropout`; returns how many. No
    parameter changes; a no-op in effect where :func:`draws_match` is False."""
    swapped = 0
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, SameDropout(child.p, child.inplace).train(child.training))
                swapped += 1
    return swapped
