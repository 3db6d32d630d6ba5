"""Self-attention on real tokens by a compiled kernel (``runtime.attention_kernel``, and in training
``runtime.attention_kernel_train``).

Why: PyTorch's CPU attention (SDPA's flash kernel) is built for long sequences. At the shapes
evaluation batches have here (32 sequences × 12 heads × 10-110 positions × 32 dimensions) it ran at
about a tenth of the machine's fp32 multiply rate and took 15 % of an XNLI or PAN-X evaluation pass
on the default model (benchmarks/RESULTS.md), and the unpadded encoder (models/unpadding.py) must
also spread the query, key and value rows into the padded layout for it and gather the result back.
``csrc/varlen_attention.cpp`` reads the unpadded ``[tokens, heads·d]`` rows directly, one sequence and
head at a time with everything in cache, touching neither padding nor other sequences' keys: 2-7×
SDPA's speed with the spreads counted, on one thread (1.9-7× in fp32). Training is worse off: with
dropout, SDPA on a CPU falls back to its unfused arithmetic (two batched products, a softmax with
checks for empty rows, the mask, layout copies for autograd), about 7 % of a PAN-X training step
with the spreads; here the forward pass keeps each sequence's softmax (fp32, n × n per head, what
SDPA's arithmetic keeps too) and the backward pass computes the three gradients from it in one call.

Equal up to float rounding: scores, softmax, the weighted sum and the gradients are computed in fp32
from the same inputs (bf16 inputs widened exactly), only the summation order and the exponential's
last bits differ, and outputs are rounded to the input's type as SDPA rounds them. Dropout uses the
mask the caller draws exactly as SDPA draws it (models/unpadding.py), so a training run draws the same
random numbers. Like another thread count, so not in run ids. Checks at first use compare it with
float64 attention on random sequences (:func:`available`; :func:`trains` for the gradients); where
one fails, or no compiler is found, PyTorch's attention is used as before. ``"auto"`` (the default)
uses it only where PyTorch runs AVX-512 kernels (:func:`wanted`): there evaluation passes were
measured faster with it; on an AVX2-only CPU its AVX2 build is as fast as SDPA over a whole pass, not
faster.

Threads: each call spreads its (sequence, head) items over the calling thread's PyTorch thread count
(an evaluation worker's one), each item on one thread, so any count gives the same bits.
"""

from __future__ import annotations

import functools
import logging
from types import ModuleType
from typing import Any

import torch

from xstilts.distributed import on_avx512
from xstilts.models import extensions

log = logging.getLogger(__name__)

SOURCE = extensions.SOURCES / "varlen_attention.cpp"
NAME = "xstilts_varlen_attention"  # the build folder adds a digest of the source and torch installation
HEAD_SIZES = (16, 32, 64, 128)
DTYPES = (torch.float32, torch.bfloat16)


@functools.cache
def _build() -> ModuleType | None:
    return extensions.build(SOURCE, NAME, "the attention kernel", openmp=True)


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, lengths: torch.Tensor, heads: int,
           scale: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``softmax(q kᵀ · scale) v`` for each sequence and head, as ``[tokens, heads·d]`` like ``query``.

    The rows of ``query``/``key``/``value`` hold the sequences end to end, ``lengths[i]`` rows for
    sequence ``i`` (an int64 tensor). Each row must be contiguous; the tensors may be views (a
    fused projection's slices) with other row strides. Where autograd records (training), the
    backward pass is the kernel's too, and ``mask`` -- dropout's scaled keep mask, fp32
    ``[sequences, heads, L, L]``, sequence ``i``'s tokens at positions ``0..lengths[i]-1`` -- multiplies
    the probabilities, as SDPA drops them.
    """
    module = _build()
    assert module is not None, "attend needs the built kernel (see available())"
    lengths = lengths.to(torch.int64).contiguous()
    starts = torch.cumsum(lengths, 0) - lengths
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (query, key, value))
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        return _Trained.apply(q, k, v, starts, lengths, heads, float(scale), mask)
    if mask is not None:
        return module.attention_train(q, k, v, starts, lengths, heads, float(scale), mask)[0]
    return module.attention(q, k, v, starts, lengths, heads, float(scale))


class _Trained(torch.autograd.Function):
    """The kernel's forward with its saved softmax, and its backward (no PyTorch operators between)."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, starts: torch.Tensor,
                lengths: torch.Tensor, heads: int, scale: float, mask: torch.Tensor | None) -> torch.Tensor:
        out, probs, offsets = _build().attention_train(q, k, v, starts, lengths, heads, scale, mask)
        ctx.save_for_backward(q, k, v, starts, lengths, probs, offsets, *(() if mask is None else (mask,)))
        ctx.heads, ctx.scale = heads, scale
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, k, v, starts, lengths, probs, offsets, *mask = ctx.saved_tensors
        grad = grad if grad.stride(-1) == 1 else grad.contiguous()
        dq, dk, dv = _build().attention_backward(grad, q, k, v, starts, lengths, ctx.heads, ctx.scale,
                                                 mask[0] if mask else None, probs, offsets)
        return dq, dk, dv, None, None, None, None, None


def instruction_set() -> str | None:
    """What the built kernel runs on this CPU: ``"avx512"``, ``"avx2+fma"`` or ``"baseline"`` (the
    compiler's default), chosen once per process; None where it is not built."""
    module = _build()
    return None if module is None else str(module.isa())


def takes(query: torch.Tensor, heads: int) -> bool:
    """Whether :func:`attend` computes this projection's attention: a CPU tensor of a supported type
    and head size."""
    return (query.device.type == "cpu" and query.dtype in DTYPES and query.dim() == 2
            and heads > 0 and query.shape[-1] % heads == 0 and query.shape[-1] // heads in HEAD_SIZES)


def wanted(setting: bool | str) -> bool:
    """``runtime.attention_kernel`` decided for this CPU: ``"auto"`` is on where PyTorch's CPU kernels
    are AVX-512 ones. There the kernel made evaluation passes 1.06-1.12x faster (Zen 4). On a VM of the
    same processor that shows only AVX2 its first AVX2 build (16-lane vectors split by the compiler)
    made the fp32 XNLI pass 1.46x slower than SDPA; the 8-lane build computes attention several times
    faster than SDPA, but the XNLI pass as a whole ran at 0.96x, 1.06x and 0.97x SDPA's in three A/Bs
    (PAN-X's at 1.04x): its matrix products are 87 % of an fp32 pass there and attention 6 %, the most
    a kernel can take off (benchmarks/RESULTS.md, fortieth to forty-fourth sessions), so SDPA
    evaluates there."""
    return on_avx512(setting)


# the first-use checks' sequence lengths and, per head size, a head count (a width of 128, or 2 heads)
_CHECK_LENGTHS = (1, 7, 16, 17, 70, 33)


def _check_heads(size: int) -> int:
    return 128 // size if size < 128 else 2


def _agrees(worst: dict[tuple[int, str], float], instead: str) -> bool:
    """Whether each (head size, dtype)'s largest error, relative to the largest value, is rounding:
    measured ~1e-6 in fp32 and ~2e-3 in bf16 (SDPA's own ~5e-7 and ~2e-3); a broken build errs by
    whole units. Warns, naming what runs ``instead``, where it is not."""
    ok = all(err <= (1e-5 if dtype == "torch.float32" else 2 ** -7) for (_, dtype), err in worst.items())
    if not ok:
        log.warning("xstilts: the attention kernel disagrees with PyTorch here (%s); %s", worst, instead)
    return ok


@functools.cache
def available() -> bool:
    """Whether the kernel is built and agrees with float64 attention (checked once per process, on
    sequences of 1-70 tokens, every head size, fp32 and bf16 inputs)."""
    if _build() is None:
        return False
    generator = torch.Generator().manual_seed(20261206)
    lengths = torch.tensor(_CHECK_LENGTHS, dtype=torch.int64)
    worst = {}
    for size in HEAD_SIZES:
        heads = _check_heads(size)
        q, k, v = (torch.randn(int(lengths.sum()), heads * size, generator=generator) for _ in range(3))
        for dtype in DTYPES:  # against the same inputs, rounded to the dtype, in float64
            q_, k_, v_ = (t.to(dtype) for t in (q, k, v))
            want = _reference(q_.double(), k_.double(), v_.double(), lengths, heads, size ** -0.5)
            got = attend(q_, k_, v_, lengths, heads, size ** -0.5).double()
            worst[(size, str(dtype))] = float((got - want).abs().max() / want.abs().max())
    return _agrees(worst, "evaluating with SDPA")


@functools.cache
def trains() -> bool:
    """Whether the kernel also trains: :func:`available`, and its output and its gradients of the
    query, key and value agree with float64 attention's, with a dropout mask (checked once per process,
    as :func:`available` checks, each head size in fp32 and bf16)."""
    if not available():
        return False
    generator = torch.Generator().manual_seed(20261207)
    lengths = torch.tensor(_CHECK_LENGTHS, dtype=torch.int64)
    longest = max(_CHECK_LENGTHS)
    worst = {}
    with torch.inference_mode(False), torch.enable_grad():  # whatever mode the first caller is in
        for size in HEAD_SIZES:
            heads = _check_heads(size)
            inputs = [torch.randn(int(lengths.sum()), heads * size, generator=generator) for _ in range(4)]
            keep = torch.rand(len(lengths), heads, longest + 2, longest + 2, generator=generator) >= 0.1
            mask = keep.float() / 0.9
            for dtype in DTYPES:
                got = [t.to(dtype).detach().requires_grad_() for t in inputs[:3]]
                want = [t.to(dtype).double().detach().requires_grad_() for t in inputs[:3]]
                grad = inputs[3].to(dtype)
                out = attend(*got, lengths, heads, size ** -0.5, mask)
                ref = _reference(*want, lengths, heads, size ** -0.5, mask.double())
                out.backward(grad)
                ref.backward(grad.double())
                worst[(size, str(dtype))] = max(float((a.double() - b).abs().max() / b.abs().max())
                                                for a, b in zip([out.detach(), *(t.grad for t in got)],
                                                                [ref.detach(), *(t.grad for t in want)], strict=True))
    return _agrees(worst, "training with SDPA")


def _reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lengths: torch.Tensor, heads: int,
               scale: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The same attention by PyTorch, one sequence at a time (for the checks and the tests)."""
    out, start = [], 0
    for i, n in enumerate(lengths.tolist()):
        rows = slice(start, start + n)
        split = [t[rows].reshape(n, heads, -1).transpose(0, 1) for t in (q, k, v)]  # [heads, n, d]
        weights = torch.softmax(split[0] @ split[1].transpose(1, 2) * scale, dim=-1)
        if mask is not None:
            weights = weights * mask[i, :, :n, :n]
        out.append((weights @ split[2]).transpose(0, 1).reshape(n, -1))
        start += n
    return torch.cat(out)
