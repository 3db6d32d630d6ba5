"""The speed switches of :class:`~xstilts.config.RuntimeConfig`, applied to an encoder before training.

Each switch is independent and measured in ``benchmarks/RESULTS.md``:

- ``threads``: intra-op threads of this process (None = auto: the cores other processes leave
  free, at most PyTorch's default of one per core; see :func:`choose_threads`);
- ``trim_vocab``: train only the word-embedding rows the run's data uses
  (:mod:`xstilts.models.vocab`; exact, and checkpoints are saved full-vocabulary);
- ``freeze_embeddings``: no gradient for the word-embedding matrix (changes results);
- ``fused_adamw``: AdamW's update in one fused kernel (:func:`adamw_options`, used by the loop);
- ``compile``: ``torch.compile`` the encoder, with dynamic shapes because bucketed batches vary
  in length (changes nothing but speed, after a one-off compilation per shape family).

``eval_batch_size`` (None: :func:`auto_eval_batch_size`), ``bucket_by_length``
(training/batching.py) and ``bf16`` (the loop's autocast) act elsewhere; they are listed here
only so the switches are found in one place.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from xstilts.config import RuntimeConfig
from xstilts.models.vocab import trim_vocabulary, used_token_ids


@dataclass
class SpeedSetup:
    """What :func:`prepare_encoder` did, for a run's ``extra`` record."""

    threads: int
    vocab_rows: int | None = None  # rows kept by trimming (None: not trimmed)
    frozen_parameters: int = 0
    compiled: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_initial_threads: int | None = None  # the process's thread count before xstilts first changed it


def _cpu_jiffies() -> tuple[int, int]:
    """(busy jiffies of the whole machine, jiffies of this process) from /proc (Linux)."""
    with open("/proc/stat", encoding="ascii") as fh:
        cpu = [int(v) for v in fh.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    with open("/proc/self/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return sum(cpu) - cpu[3] - cpu[4], int(fields[11]) + int(fields[12])  # utime + stime, all threads


def other_busy_cores(window_s: float = 0.25) -> float | None:
    """Cores kept busy by *other* processes over a short window (None where /proc is missing).

    Why not the load average: it counts this process too, so after one training run at two
    threads on two cores the next run saw a load of 2, took the machine for oversubscribed and
    trained at half speed (the quickstart, 2026-11-25). The load average also lags by a minute.
    """
    try:
        busy0, own0 = _cpu_jiffies()
        time.sleep(window_s)
        busy1, own1 = _cpu_jiffies()
    except (OSError, ValueError, IndexError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    return max(0.0, ((busy1 - busy0) - (own1 - own0)) / hz / window_s)


def choose_threads(runtime: RuntimeConfig) -> int:
    """``runtime.threads``, or (None) the cores other processes leave free, within the initial count.

    Why: PyTorch's CPU kernels synchronise their threads at every operation; when the cores are
    shared with other busy processes one of them is often descheduled and the rest wait for it.
    On this 2-core machine under a load of 10, one thread trained 7.6× faster than two
    (benchmarks/RESULTS.md); on the idle machine two threads train 1.8× faster than one. The
    "initial count" is PyTorch's default or what an executor set (the Ray executor sets one per
    run), so auto never raises it. Without /proc, the 1-minute load average stands in.
    """
    global _initial_threads
    if _initial_threads is None:
        _initial_threads = torch.get_num_threads()
    if runtime.threads:
        return runtime.threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    others = other_busy_cores()
    if others is None:
        try:
            others = os.getloadavg()[0]
        except OSError:  # not available on this platform
            return _initial_threads
    return max(1, min(_initial_threads, round(cores - others)))


def apply_threads(runtime: RuntimeConfig) -> int:
    """Set this process's intra-op thread count (see :func:`choose_threads`); return it."""
    threads = choose_threads(runtime)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def freeze_input_embeddings(encoder: nn.Module) -> int:
    """Stop gradients into the word-embedding matrix (position/type embeddings still train)."""
    weight = encoder.get_input_embeddings().weight
    weight.requires_grad_(False)
    return weight.numel()


def compile_encoder(encoder: nn.Module) -> None:
    """Compile the encoder's forward in place; ``dynamic`` avoids one recompilation per batch length."""
    encoder.compile(dynamic=True)


def adamw_options(runtime: RuntimeConfig, device: torch.device) -> dict[str, Any]:
    """Keyword arguments for ``torch.optim.AdamW``: the fused kernel where it exists.

    Why: the default CPU implementation loops over ~200 parameter tensors with several kernels
    each; the fused one does the update in one pass (45 vs 160 ms per step for the trimmed
    default model on one core), with the same arithmetic up to rounding.
    """
    if runtime.fused_adamw and device.type in ("cpu", "cuda"):
        return {"fused": True}
    return {}


def auto_eval_batch_size(device_type: str) -> int:
    """Evaluation batch size when ``runtime.eval_batch_size`` is None.

    Why not "as large as fits": on this CPU inference over length-sorted XNLI / PAN-X dev batches
    ran 1.5-1.7× faster with batches of 16-32 than of 128 (2,700-3,700 vs 1,700-2,300 real
    tokens/s; benchmarks/RESULTS.md). Accelerators want large batches.
    """
    return 32 if device_type == "cpu" else 128


def prepare_encoder(encoder: nn.Module, runtime: RuntimeConfig,
                    feature_sets: Iterable[Sequence[dict[str, Any]]] = (), pad_id: int | None = None,
                    ) -> SpeedSetup:
    """Apply the runtime's speed switches to ``encoder`` (in place) before a training phase.

    ``feature_sets`` must cover every feature the encoder will see (training *and* evaluation):
    trimming keeps exactly their token ids, and a later id outside them is an error.
    """
    setup = SpeedSetup(threads=apply_threads(runtime))
    if runtime.trim_vocab:
        extra = [pad_id] if pad_id is not None and pad_id >= 0 else []
        trimmed = trim_vocabulary(encoder, used_token_ids(feature_sets, extra))
        setup.vocab_rows = len(trimmed.kept)
    if runtime.freeze_embeddings:
        setup.frozen_parameters = freeze_input_embeddings(encoder)
    if runtime.compile:
        compile_encoder(encoder)
        setup.compiled = True
    return setup
