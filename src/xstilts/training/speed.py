"""The speed switches of :class:`~xstilts.config.RuntimeConfig`, applied to an encoder before training.

Each switch is independent and measured in ``benchmarks/RESULTS.md``:

- ``threads``: intra-op threads of this process (None = PyTorch's default, one per core);
- ``trim_vocab``: train only the word-embedding rows the run's data uses
  (:mod:`xstilts.models.vocab`; exact, and checkpoints are saved full-vocabulary);
- ``freeze_embeddings``: no gradient for the word-embedding matrix (changes results);
- ``compile``: ``torch.compile`` the encoder, with dynamic shapes because bucketed batches vary
  in length (changes nothing but speed, after a one-off compilation per shape family).

``bucket_by_length`` (training/batching.py), ``bf16`` (the loop's autocast) and the evaluation
batch settings act elsewhere; they are listed here only so the switches are found in one place.
"""

from __future__ import annotations

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


def apply_threads(runtime: RuntimeConfig) -> int:
    """Set this process's intra-op thread count when the config names one; return the count in use."""
    if runtime.threads and torch.get_num_threads() != runtime.threads:
        torch.set_num_threads(runtime.threads)
    return torch.get_num_threads()


def freeze_input_embeddings(encoder: nn.Module) -> int:
    """Stop gradients into the word-embedding matrix (position/type embeddings still train)."""
    weight = encoder.get_input_embeddings().weight
    weight.requires_grad_(False)
    return weight.numel()


def compile_encoder(encoder: nn.Module) -> None:
    """Compile the encoder's forward in place; ``dynamic`` avoids one recompilation per batch length."""
    encoder.compile(dynamic=True)


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
