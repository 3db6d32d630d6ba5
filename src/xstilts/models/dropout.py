"""Cheaper dropout for training on CPUs (``runtime.fast_dropout``): masks from 16 random bits each.

Why: PyTorch's CPU dropout draws its mask with ``bernoulli_`` into a float tensor, which took
15.7 ms for one [32, 100, 384] activation and 63 ms for a [32, 12, 100, 100] attention-probability
tensor on the 2-core benchmark machine, and 11 % of an XNLI training step (benchmarks/RESULTS.md).
Here one 64-bit draw of the generator yields four 16-bit words, and a unit is kept when its word
is at or above a threshold: the same Bernoulli masks at a quarter of the draws, compared and
multiplied in two cheap passes, and a one-byte mask kept for the backward pass. Since
``runtime.draw_kernel`` (default on, :mod:`xstilts.models.draws`) draws PyTorch's own masks at about
a tenth of that cost, this switch no longer trains measurably faster than the default (XNLI bf16,
4 alternating pairs: the default at a median 0.97× of this switch's speed, pairs 0.76-1.12×;
benchmarks/RESULTS.md), and the default keeps the stream of a plain PyTorch run.

What changes: the random stream (so results differ from ``nn.Dropout``'s the way another seed's
do: this switch is in run ids) and the probability, rounded to a multiple of 1/65,536
(0.1 → 0.100006). Masks come from the default generator, so a seeded run is reproducible.
Evaluation is untouched: in ``eval()`` mode every function here is the identity / PyTorch's own
SDPA, bit for bit.

Attention dropout lives inside the attention function, not in a module, so
:func:`use_fast_dropout` also registers an attention implementation (``"xstilts_sdpa"``) with
transformers' attention interface: SDPA when not dropping, else the same arithmetic written out
with this mask on the probabilities (PyTorch's SDPA falls back to that arithmetic whenever
``dropout_p > 0`` on CPU anyway).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from xstilts.models.draws import KernelDropout, draw_alike, held

ATTENTION_NAME = "xstilts_sdpa"
_LEVELS = 1 << 16  # 16-bit words


def drawn_mask(drop: Any, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """The scaled mask (kept: 1/(1-p), dropped: 0) that the dropout ``drop`` draws for a tensor of
    ``shape`` in ``like``'s dtype and device, drawing exactly what it draws on such a tensor.

    Why: a shortcut that computes only some positions (models/first_token.py, models/unpadding.py)
    must still consume the random generator as the full layer does, or every later mask moves.
    Dropout applied to ones returns its mask times 1/(1-p), exactly, after the same calls. For
    PyTorch's own dropout in training on a CPU the mask is drawn directly instead: the noise
    PyTorch's CPU dropout draws and scales (``bernoulli_(1 - p)``, ``div_(1 - p)``), without the
    ones, the product by them, or the draw kernel's dispatch mode around anything but the draw --
    about 0.3 ms less a call at PAN-X's shapes, three calls a layer (benchmarks/RESULTS.md). The
    same bits and generator state as the module's, checked once per dtype (:func:`_direct_agrees`).
    """
    if _direct(drop, like):
        with held(drop):  # the draw kernel's mode where the module would hold it (models/draws.py)
            noise = torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(1 - drop.p)
        return noise.div_(1 - drop.p)
    return drop(torch.ones(shape, dtype=like.dtype, device=like.device))


def _direct(drop: Any, like: torch.Tensor) -> bool:
    """Whether :func:`drawn_mask` may draw ``drop``'s mask itself: PyTorch's dropout drawing on a CPU
    (``p`` 0 and 1 draw nothing; GPUs draw in a fused kernel) where the two forms agree."""
    return (type(drop) in (nn.Dropout, KernelDropout) and drop.training and not drop.inplace
            and 0.0 < drop.p < 1.0 and like.device.type == "cpu" and _direct_agrees(like.dtype))


@functools.cache
def _direct_agrees(dtype: torch.dtype) -> bool:
    """Whether the direct draw gives ``nn.Dropout``'s masks on ones, and leaves the generator where it
    does, in ``dtype`` (checked once: a PyTorch whose CPU dropout draws otherwise keeps the module)."""
    cases = (((3, 5, 7), 0.1), ((1000,), 0.5), ((2, 700), 0.9))
    return draw_alike([lambda: [nn.Dropout(p).train()(torch.ones(shape, dtype=dtype)) for shape, p in cases],
                       lambda: [torch.empty(shape, dtype=dtype).bernoulli_(1 - p).div_(1 - p)
                                for shape, p in cases]], seed=20261207)


def keep_threshold(p: float) -> tuple[int, float]:
    """(threshold on signed 16-bit words, the drop probability actually used) for probability ``p``."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    dropped = round(p * _LEVELS)
    return dropped - _LEVELS // 2, dropped / _LEVELS


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str = "cpu",
              generator: torch.Generator | None = None) -> torch.Tensor:
    """A boolean mask of ``shape``, each entry True (kept) with probability ``1 - p`` (rounded as above)."""
    threshold, _ = keep_threshold(p)
    n = 1
    for size in shape:
        n *= int(size)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(1 << 63), None, generator=generator)  # all 64 bits uniform
    return words.view(torch.int16)[:n].view(shape) >= threshold


class _MaskedScale(torch.autograd.Function):
    """``x * keep * scale`` with the one-byte mask saved for backward (not a float copy of it)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x.mul(keep).mul_(scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (keep,) = ctx.saved_tensors
        return grad.mul(keep).mul_(ctx.scale), None, None


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Dropout with :func:`keep_mask`'s masks; the identity when not training or ``p == 0``."""
    if not training or p == 0.0:
        return x
    _, used = keep_threshold(p)
    return _MaskedScale.apply(x, keep_mask(x.shape, p, x.device), 1.0 / (1.0 - used))


class FastDropout(nn.Module):
    """Drop-in for ``nn.Dropout`` (same ``p`` attribute, which BERT's attention reads)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        keep_threshold(p)  # validates
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def fast_dropout_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                           attention_mask: torch.Tensor | None, dropout: float = 0.0,
                           scaling: float | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: SDPA unless dropping, then softmax(QKᵀ)·V by hand."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if dropout == 0.0 or not module.training:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=0.0,
                                      scaling=scaling, **kwargs)
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)).mul_(scaling)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:  # True = attend (SDPA's convention)
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    probs = fast_dropout(torch.softmax(scores, dim=-1), dropout, True)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, fast_dropout_attention)
    if ATTENTION_NAME not in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
        AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)  # same boolean masks as "sdpa"


def draws_with_pytorch(model: nn.Module) -> bool:
    """Whether a training forward pass of ``model`` draws dropout masks with PyTorch's ``bernoulli_``:
    a plain ``nn.Dropout`` with ``p > 0`` is left, or attention dropout runs in an implementation
    other than :data:`ATTENTION_NAME` (SDPA's and eager attention's draw with PyTorch's dropout).

    Why: the loop's draw kernel (:mod:`xstilts.models.draws`) is a dispatch mode that every operator
    of the forward pass goes through; after :func:`use_fast_dropout` nothing is left for it to draw,
    and on one thread in bf16 a step with the mode ran at 0.91x (XNLI) and 0.87x (PAN-X) the speed
    of one without it (benchmarks/RESULTS.md)."""
    dropping = [m for m in model.modules() if isinstance(m, (nn.Dropout, FastDropout)) and m.p > 0]
    if any(isinstance(m, nn.Dropout) for m in dropping):
        return True
    implementation = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return bool(dropping) and implementation != ATTENTION_NAME


def use_fast_dropout(model: nn.Module) -> int:
    """Swap every ``nn.Dropout`` in ``model`` for :class:`FastDropout`, and SDPA for :data:`ATTENTION_NAME`.

    Returns the number of modules swapped. The attention implementation is switched only where the
    model was using ``"sdpa"`` (other implementations, e.g. flash kernels on GPUs, keep their own
    dropout). Saved weights are unaffected: no parameter changes.
    """
    swapped = 0
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) in (nn.Dropout, KernelDropout):
                setattr(parent, name, FastDropout(child.p).train(child.training))
                swapped += 1
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "_attn_implementation", None) == "sdpa":
        _register_attention()
        for sub in model.modules():  # every sub-config that says "sdpa" (one, for BERT)
            sub_config = getattr(sub, "config", None)
            if sub_config is not None and getattr(sub_config, "_attn_implementation", None) == "sdpa":
                sub_config._attn_implementation = ATTENTION_NAME
    return swapped
