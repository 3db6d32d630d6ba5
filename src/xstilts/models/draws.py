"""PyTorch's own CPU dropout masks from a compiled kernel: the same draws, bit for bit, several times faster.

Why: on CPUs whose ``bernoulli_`` takes PyTorch's generic path (all but Intel's, where MKL draws
otherwise), every dropout mask -- ``nn.Dropout``'s and SDPA's attention-probability dropout alike
-- is drawn one element at a time: two 32-bit Mersenne-Twister outputs, a double, a comparison,
serially on one thread. That was 17 % of a bf16 XNLI training step on the 2-core Zen 4 machine
(benchmarks/RESULTS.md), with the second core idle meanwhile. ``csrc/bernoulli_draws.cpp`` draws
the same numbers from the same generator state with the twist and tempering vectorised over whole
624-word blocks: about 1 ns an element against 6-12.

Exact by construction: it writes the 0s and 1s ``bernoulli_`` writes and leaves the default
generator in the state ``bernoulli_`` leaves, so everything downstream (the noise's scaling, the
product, the backward, every later draw) is PyTorch's own arithmetic on identical inputs: results
are equal to the bit (tests/models/test_draws.py), so the switch is not in run ids. Where that
cannot be promised the kernel is not used: it is checked against ``bernoulli_`` once per process
(:func:`available`), and only plain calls are taken (default generator, contiguous CPU tensor of a
float type or bool, a float ``p``).

How: :class:`KernelDraws`, a dispatch mode, routes ``aten.bernoulli_.float`` to the kernel and
every other operation to PyTorch unchanged -- a mode, not a patched module, because SDPA draws its
attention dropout inside the operator, where no module can reach. It is held only where a model
draws (``runtime.draw_kernel``, default on): the training loop prepares each dropout module and
each attention module with :func:`install` to hold it for their own forward pass (every operator
inside the mode goes through Python), and holds it around the whole forward pass only for an
encoder in which it finds no attention module. The kernel is compiled with
``torch.utils.cpp_extension`` at first use (about 40 s; ``scripts/setup.sh`` does it once) and
cached by source and torch installation (:func:`build_directory`); without a compiler the loop draws with
PyTorch as before, and says so once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from xstilts.models import extensions

log = logging.getLogger(__name__)

SOURCE = extensions.SOURCES / "bernoulli_draws.cpp"
NAME = "xstilts_bernoulli_draws"  # the build folder adds a digest of the source and torch installation
DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64, torch.bool)
_BERNOULLI = torch.ops.aten.bernoulli_.float


def build_directory() -> Path:
    """Where the kernel is built (models/extensions.py): one folder per source text and torch installation."""
    return extensions.build_directory(SOURCE, NAME)


@functools.cache
def _build() -> ModuleType | None:
    """The compiled kernel (built and cached at first use), or None where it cannot be built."""
    return extensions.build(SOURCE, NAME, "the dropout-draw kernel")


def kernel_bernoulli_(tensor: torch.Tensor, p: float) -> torch.Tensor:
    """``tensor.bernoulli_(p)`` by the kernel (where :func:`takes` holds and the kernel is built)."""
    module = _build()
    assert module is not None, "kernel_bernoulli_ needs the built kernel (see available())"
    module.bernoulli_(tensor, float(p))
    return tensor


def takes(tensor: torch.Tensor, p: Any, generator: Any = None) -> bool:
    """Whether a ``bernoulli_(p, generator=generator)`` call is one the kernel draws exactly."""
    return (generator is None and isinstance(p, float) and 0.0 <= p <= 1.0 and tensor.device.type == "cpu"
            and tensor.dtype in DTYPES and tensor.is_contiguous() and not tensor.requires_grad)


def draw_alike(forms: Sequence[Callable[[], list[torch.Tensor]]], seed: int) -> bool:
    """Whether every form, each started from one seeded state of the CPU generator, draws the same
    tensors and leaves the generator in the same state: how a faster draw proves it is PyTorch's
    (here and in models/dropout.py). The caller's generator state is restored."""
    saved = torch.get_rng_state()
    start = torch.Generator().manual_seed(seed).get_state()
    try:
        results = []
        for form in forms:
            torch.set_rng_state(start)  # the CPU generator alone: manual_seed would reseed GPUs too
            results.append((form(), torch.get_rng_state()))
    finally:
        torch.set_rng_state(saved)
    (first, state), *others = results
    return all(len(drawn) == len(first) and all(torch.equal(x, y) for x, y in zip(first, drawn, strict=True))
               and torch.equal(state, after) for drawn, after in others)


@functools.cache
def available() -> bool:
    """Whether the kernel is built and draws what this process's ``bernoulli_`` draws (checked once,
    on sizes that cross the generator's 624-word blocks; the default generator's state is restored)."""
    if _build() is None:
        return False
    cases = ((1, torch.float32, 0.9), (623, torch.bfloat16, 0.5), (5003, torch.float32, 0.9),
             (1250, torch.float16, 0.1), (700, torch.bool, 0.75))
    same = draw_alike([lambda draw=draw: [draw(torch.empty(n, dtype=dtype), p) for n, dtype, p in cases]
                       for draw in (lambda t, p: t.bernoulli_(p), kernel_bernoulli_)], seed=20261203)
    if not same:
        log.info("xstilts: this CPU's bernoulli_ draws otherwise (MKL); the dropout-draw kernel is not used")
    return same


class KernelDraws(TorchDispatchMode):
    """Inside ``with KernelDraws():``, plain ``bernoulli_(p)`` calls draw with the kernel; all else is
    PyTorch's. ``calls`` counts what it took (tests check which draws it routes)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is _BERNOULLI and len(args) == 2 and takes(args[0], args[1], kwargs.get("generator")):
            self.calls += 1
            return kernel_bernoulli_(args[0], args[1])
        return func(*args, **kwargs)


# Where the mode is held. A dispatch mode sends every operator inside it through Python. Held around
# the whole forward pass it slowed a one-thread bf16 step to 0.87-0.91x where nothing was left to draw
# (``fast_dropout``), and held only where draws happen fp32 XNLI trained 1.07x faster on one thread
# (bf16: no measurable change; benchmarks/RESULTS.md). :func:`install` prepares a model to hold it
# only where it draws -- inside each dropout module and each attention module -- and those places do
# so within ``with drawing():`` (the training loop's forward pass), nowhere else.
_LOCAL = threading.local()  # whether this thread is inside drawing()
_HELD = "_xstilts_kernel_mode"  # the mode an attention module's forward is holding
_HOOKED = "_xstilts_kernel_hooks"  # marks an attention module install() has hooked


@contextlib.contextmanager
def drawing() -> Iterator[None]:
    """Within this block the places :func:`install` prepared draw with the kernel."""
    before = getattr(_LOCAL, "on", False)
    _LOCAL.on = True
    try:
        yield
    finally:
        _LOCAL.on = before


def _holds(module: nn.Module) -> bool:
    return module.training and getattr(_LOCAL, "on", False)


@contextlib.contextmanager
def held(module: nn.Module) -> Iterator[None]:
    """The mode, for a training-mode ``module`` within :func:`drawing`; nothing otherwise. For code
    that draws outside the places :func:`install` covers (models/first_token.py's same-draws path)."""
    if not _holds(module):
        yield
        return
    with KernelDraws():
        yield


class KernelDropout(nn.Dropout):
    """An ``nn.Dropout`` that draws its mask inside :class:`KernelDraws` within :func:`drawing`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0:
            return super().forward(x)
        with held(self):
            return super().forward(x)


def _enter(module: nn.Module, args: Any) -> None:
    if _holds(module):
        mode = KernelDraws()
        mode.__enter__()
        module.__dict__[_HELD] = mode


def _leave(module: nn.Module, args: Any, output: Any) -> None:
    mode = module.__dict__.pop(_HELD, None)
    if mode is not None:
        mode.__exit__(None, None, None)


HOOKS = (_enter, _leave)  # the hooks install() registers: they watch nothing (models/unpadding.py)


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """transformers' attention modules: a ``config`` and an ``nn.Dropout`` child named ``dropout``
    whose ``p`` the attention function (SDPA, eager) is given to drop the probabilities with."""
    return [m for m in model.modules()
            if hasattr(m, "config") and isinstance(getattr(m, "dropout", None), nn.Dropout)]


def install(model: nn.Module) -> int:
    """Prepare ``model`` to draw with the kernel where it draws (see :func:`drawing`): plain
    ``nn.Dropout`` modules become :class:`KernelDropout` (same ``p``, no parameters, still an
    ``nn.Dropout``), and each attention module gets hooks that hold the mode around its forward pass.
    Returns the number of places; a second call changes nothing. Draws made anywhere else (a model
    calling ``F.dropout`` itself) come from PyTorch: the same numbers, drawn slower."""
    count = 0
    for m in model.modules():
        if type(m) is nn.Dropout:
            m.__class__ = KernelDropout
        count += isinstance(m, KernelDropout)
    for m in attention_modules(model):
        if not getattr(m, _HOOKED, False):
            m.register_forward_pre_hook(_enter)
            m.register_forward_hook(_leave, always_call=True)
            setattr(m, _HOOKED, True)
        count += 1
    return count
