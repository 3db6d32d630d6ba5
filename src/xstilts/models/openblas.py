"""fp32 linear layers on a CPU through OpenBLAS's sgemm instead of MKL's (``runtime.openblas_linear``).

Why: PyTorch's CPU wheel multiplies fp32 matrices with MKL. On the AMD EPYC VM of
``benchmarks/RESULTS.md`` that hides AVX-512 (AVX2 only), MKL's sgemm ran the encoder's training
shapes (1,483 tokens x 384 -> 384 / 1,536 and back, forward, input and weight gradients) at 75-80
GFLOP/s on one thread, and OpenBLAS (the build numpy and scipy ship, ``scipy-openblas32``) at 81-86:
about 8 % more, on the products that are 86 % of a step there. MKL's kernels are Intel's; on that AMD
CPU OpenBLAS's Haswell kernels are the faster ones.

How: ``csrc/openblas_gemm.cpp`` calls OpenBLAS with one thread per call and splits the rows of each
product over PyTorch's own intra-op threads (an OpenMP loop on the calling thread's count, which in
an evaluation worker is one). OpenBLAS's own thread pool next to PyTorch's put three
busy threads on two cores and made a two-thread step 2.5x slower; this way a step runs on exactly
the threads ``torch.set_num_threads`` allows, as every other operator does. :func:`install` gives
each plain ``nn.Linear`` the class :class:`OpenBLASLinear` (same parameters and state-dict keys); its
forward takes this path for fp32 CPU inputs outside autocast and compilation and is ``F.linear``
otherwise. In training an autograd function computes the input and weight gradients through
OpenBLAS too.

Equal up to float rounding: another library sums the same products in another order, like another
thread count; the random stream is untouched, so ``runtime.openblas_linear`` is not in run ids. A
check at first use compares it with ``F.linear`` (:func:`available`); where it fails, the library
is missing, or no compiler is found, the layers stay with MKL.
"""

from __future__ import annotations

import functools
import logging
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn

from xstilts.distributed import amd_cpu, on_avx512
from xstilts.models import extensions, library_linear

log = logging.getLogger(__name__)

SOURCE = extensions.SOURCES / "openblas_gemm.cpp"
NAME = "xstilts_openblas_gemm"


@functools.cache
def _build() -> ModuleType | None:
    try:
        import scipy_openblas32  # the library and its header: scipy-openblas32 on PyPI
    except ImportError:
        log.warning("xstilts: scipy-openblas32 is not installed; fp32 linear layers stay with MKL")
        return None
    lib = scipy_openblas32.get_lib_dir()
    module = extensions.build(SOURCE, NAME, "the OpenBLAS linear layers", [scipy_openblas32.get_include_dir()],
                              [f"-L{lib}", f"-l{scipy_openblas32.get_library()}", f"-Wl,-rpath,{lib}"], openmp=True)
    if module is not None:
        module.set_single_threaded()
    return module


def wanted(setting: bool | str) -> bool:
    """``runtime.openblas_linear`` decided for this CPU: ``"auto"`` is on for an AMD CPU where
    PyTorch's kernels are not AVX-512 ones, the one kind it was measured faster on (a Zen 4 VM showing
    only AVX2, benchmarks/RESULTS.md, forty-fifth session). Where they are AVX-512 ones oneDNN's
    linear layers are used instead on AMD (models/linear.py), MKL's on Intel; on an Intel Xeon with
    AMX OpenBLAS trained PAN-X 0.90x as fast as oneDNN (forty-seventh session)."""
    if setting != "auto":
        return bool(setting)
    return not on_avx512("auto") and amd_cpu()


@functools.cache
def available() -> bool:
    """Whether the kernel is built and computes ``F.linear`` and its gradients (checked once, on odd
    shapes and a transposed operand; from a generator of its own, leaving the random stream alone)."""
    module = _build()
    if module is None:
        return False
    g = torch.Generator().manual_seed(20261206)
    worst = 0.0
    for rows, cols, out in ((1, 7, 3), (70, 33, 129), (257, 64, 65)):
        x, w, b = torch.randn(rows, cols, generator=g), torch.randn(out, cols, generator=g), torch.randn(out, generator=g)
        pairs = [(module.linear(x, w, b), F.linear(x, w, b)), (module.linear(x, w, None), F.linear(x, w)),
                 (module.mm(x.t().contiguous().t(), w.t()), x @ w.t()), (module.mm(w.t(), w), w.t() @ w)]
        for got, want in pairs:
            worst = max(worst, float((got - want).abs().max() / want.abs().max().clamp_min(1e-12)))
    ok = worst <= 1e-5  # measured ~3e-7; a broken build errs by whole units
    if not ok:
        log.warning("xstilts: OpenBLAS's products disagree with PyTorch's here (%.2g); fp32 linear layers stay "
                    "with MKL", worst)
    return ok


class _Linear(torch.autograd.Function):
    """``F.linear`` on 2-D inputs with the products and their gradients through OpenBLAS."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _build().linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        module = _build()  # it copies any layout sgemm cannot read (a broadcast gradient)
        grad_x = module.mm(grad, weight) if ctx.needs_input_grad[0] else None
        grad_w = module.mm(grad.t(), x) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, through OpenBLAS where it applies (module docstring)."""
    if not library_linear.takes(x, weight):
        return F.linear(x, weight, bias)
    return library_linear.through(x, weight, bias, _Linear, _build().linear)


class OpenBLASLinear(nn.Linear):
    """An ``nn.Linear`` whose fp32 CPU forward goes through :func:`linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def install(module: nn.Module) -> int:
    """Give every plain ``nn.Linear`` in ``module`` the class :class:`OpenBLASLinear`; returns how many.
    Returns 0, changing nothing, where :func:`available` is False."""
    return library_linear.give_class(module, OpenBLASLinear) if available() else 0
