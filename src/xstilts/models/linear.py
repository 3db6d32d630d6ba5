"""fp32 linear layers on a CPU through oneDNN's inner product instead of MKL's GEMM.

Why: PyTorch's CPU wheel multiplies fp32 matrices with MKL's ``sgemm``; oneDNN, also inside
every wheel (it does the bf16 products), has its own fp32 kernels. On the 2-core AMD Zen 4 machine
of ``benchmarks/RESULTS.md`` the encoder's layer shapes (1,440 tokens x 384 -> 1,152 / 1,536 and
back) ran at 170-210 GFLOP/s through oneDNN against 130-175 through MKL (why MKL is slower there
was not investigated). The layers' weight gradients (an inner dimension of thousands of tokens)
were no faster there, so they stay with MKL. On an AVX2-only AMD
EPYC (Zen 1) it went the other way: PAN-X trained 1.09x faster on MKL; on a Zen 4 VM that hides
AVX-512 the products alone ran level (72-80 GFLOP/s a thread at these shapes), yet XNLI trained
0.92x as fast with oneDNN's layers; and on an Intel Xeon VM with AVX-512 and AMX MKL's products ran
at 158-169 GFLOP/s a core against oneDNN's 144-156, and PAN-X and XNLI trained 1.08x and 1.07x
faster on MKL. So ``runtime.onednn_linear = "auto"`` (the default) takes oneDNN only on an AMD CPU
where PyTorch runs AVX-512 kernels (:func:`wanted`).

Equal up to float rounding: another library sums the same products in another order, like another
thread count; the random stream is untouched, so ``runtime.onednn_linear`` is not in run ids.

How: :func:`install` gives each plain ``nn.Linear`` of the encoder the class :class:`OneDNNLinear`
(same parameters, same state-dict keys, still an ``nn.Linear``; a class rather than a patched
method so a deep copy stays consistent). Its forward takes the oneDNN path only for fp32 inputs
on a CPU outside autocast and compilation -- bf16 autocast already multiplies through oneDNN --
and is ``F.linear`` otherwise. In training an autograd function computes the input gradient
through oneDNN too and the weight and bias gradients as ``F.linear``'s backward does.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from xstilts.distributed import amd_cpu, on_avx512
from xstilts.models import library_linear


@functools.cache
def available() -> bool:
    """Whether this PyTorch has oneDNN's linear operator and it computes ``F.linear`` (checked once).

    The check draws from a generator of its own: drawing from the default one would shift the random
    stream of whichever run happens to call it first in a process (a pool worker's first run, a
    resumed study's first run), so stores would depend on run order."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        g = torch.Generator().manual_seed(0)
        x, w, b = (torch.randn(*shape, generator=g) for shape in ((5, 7), (3, 7), (3,)))
        return bool(torch.allclose(inner_product(x, w, b), F.linear(x, w, b), rtol=1e-5, atol=1e-5))
    except (AttributeError, RuntimeError):
        return False


def wanted(setting: bool | str) -> bool:
    """``runtime.onednn_linear`` decided for this CPU: ``"auto"`` is on for an AMD CPU where PyTorch's
    CPU kernels are AVX-512 ones, the machines oneDNN was faster on (MKL was faster on an AVX2-only
    Zen, and on an Intel Xeon with AVX-512 and AMX)."""
    if setting != "auto":
        return bool(setting)
    return on_avx512("auto") and amd_cpu()


def inner_product(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T + bias`` through oneDNN, for a 2-D ``x`` (``weight`` may be a transposed view)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class _Linear(torch.autograd.Function):
    """``F.linear`` on 2-D inputs with the forward and the input gradient through oneDNN."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return inner_product(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x = inner_product(grad, weight.t(), None) if ctx.needs_input_grad[0] else None
        grad_w = grad.t().mm(x) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, through oneDNN where it applies (module docstring)."""
    if not library_linear.takes(x, weight):
        return F.linear(x, weight, bias)
    return library_linear.through(x, weight, bias, _Linear, inner_product)


class OneDNNLinear(nn.Linear):
    """An ``nn.Linear`` whose fp32 CPU forward goes through :func:`linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def install(module: nn.Module) -> int:
    """Give every plain ``nn.Linear`` in ``module`` the class :class:`OneDNNLinear`; returns how many.
    Returns 0, changing nothing, where :func:`available` is False."""
    return library_linear.give_class(module, OneDNNLinear) if available() else 0
