"""This process's place in a data-parallel job: the one home of the ``PartialState`` xstilts uses.

Under ``accelerate launch``/``torchrun`` every process walks the same plan; only the main one
writes (store, checkpoints) and the others wait for it. Outside such a job there is one process.
Also here: how many cores this process may use (auto threads and the pool executor both ask) and
whether its device computes bf16 natively (``runtime.bf16 = "auto"``), and whose CPU it is (AMD or not:
which fp32 product library ``"auto"`` picks).
A bottom-layer module: executors, phases and checkpoint writing all ask it, and it imports
nothing of xstilts.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS has one (taskset, cgroups)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def native_bf16() -> bool:
    """Whether this process's device multiplies bf16 in hardware, so bf16 autocast is faster, not slower.

    A GPU that reports bf16 support; a CPU with AVX-512 BF16 dot products (Cooper Lake, Sapphire
    Rapids and later, AMD Zen 4 and later) or AMX tiles. Elsewhere (AVX2-only CPUs, say) PyTorch
    emulates bf16 and autocast slows training down, so "auto" keeps fp32 there.
    """
    import torch

    device = process_device()
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return False


CPUINFO = Path("/proc/cpuinfo")  # where Linux names the CPU's vendor


@functools.cache
def amd_cpu() -> bool:
    """Whether the CPU is an AMD one (its vendor string in /proc/cpuinfo; False where unreadable):
    which library multiplies fp32 fastest differs between AMD's and Intel's (models/linear.py,
    models/openblas.py)."""
    if platform.system() != "Linux":
        return False
    try:
        text = CPUINFO.read_text(errors="replace")
    except OSError:
        return False
    return "AuthenticAMD" in text


def on_avx512(setting: bool | str) -> bool:
    """A CPU speed switch decided for this machine: ``"auto"`` is True where PyTorch's CPU kernels are
    AVX-512 ones (``torch.backends.cpu.get_cpu_capability``), the machines those switches were measured
    faster on; ``True``/``False`` as given."""
    import torch

    if setting != "auto":
        return bool(setting)
    return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def process_state():  # -> accelerate.state.PartialState
    """This process's place in an ``accelerate launch``/``torchrun`` job (one process otherwise).

    ``ACCELERATE_USE_CPU`` (what ``accelerate launch --cpu`` sets) is honoured here as Accelerator
    does, or a CPU-only multi-process job would start as several independent single processes.
    """
    from accelerate.state import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def is_main_process() -> bool:
    """False only in the non-zero ranks of ``accelerate launch``: they train but never write."""
    return process_state().is_main_process


def process_device():  # -> torch.device
    """This process's device (its GPU under ``accelerate launch``, the GPU or CPU otherwise)."""
    return process_state().device
