"""What a head kind provides: features from examples, a module on top of the encoder, a loss,
and an evaluation from raw outputs back to per-example metric rows.

Features are plain dicts (``input_ids`` list, ``length`` int, plus head-specific fields); a batch
is the dict of padded tensors :meth:`HeadKind.collate` makes. A head module is called as
``head(encoder, batch)`` so heads that reshape the input (multiple choice) own that detail.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from xstilts.metrics.stats import score_from_stats
from xstilts.models import first_token, packing
from xstilts.tasks.base import Example, Task

Feature = dict[str, Any]


@dataclass
class Evaluation:
    """Scores (0–100) per metric and the per-example rows they were computed from.

    ``predictions``, where the head fills it, holds one prediction per example in the form
    :func:`xstilts.evaluation.submission.write_predictions` writes (a tag list, a label, an
    answer text), so a run can write what it predicted, not only how well it scored.
    """

    stats: dict[str, np.ndarray] = field(default_factory=dict)
    predictions: list[Any] | None = None

    @property
    def scores(self) -> dict[str, float]:
        return {metric: score_from_stats(metric, rows) for metric, rows in self.stats.items()}


def pad(seqs: Sequence[Sequence[int]], value: int, length: int | None = None) -> torch.Tensor:
    """Right-pad integer sequences into a (batch, length) tensor."""
    length = length or max(len(s) for s in seqs)
    out = torch.full((len(seqs), length), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out


def encoder_hidden(encoder: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Last hidden states of any Hugging Face encoder (BERT, XLM-R, ...), ``[batch, length, hidden]``.

    Training steps are computed packed where ``runtime.pack_sequences`` installed packing
    (models/packing.py), unless the first-token shortcut is computing the last layer for one
    position (models/first_token.py: a packed row holds several first tokens).
    """
    if encoder.training and packing.installed(encoder) and not first_token.in_effect(encoder):
        return packing.packed_hidden(encoder, batch["input_ids"], batch["attention_mask"])
    return encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state


class HeadKind(ABC):
    """One kind of output layer (tagging, classification, span QA, multiple choice)."""

    kind: str

    @abstractmethod
    def build(self, task: Task, hidden_size: int, dropout: float) -> nn.Module:
        """A fresh head module for ``task``; ``module(encoder, batch)`` returns logits.

        ``dropout`` is the phase's ``train.dropout`` (the encoder gets the same, see
        :func:`xstilts.models.loading.load_encoder`).
        """

    @abstractmethod
    def encode(self, task: Task, examples: Sequence[Example], tokenizer: Any, max_length: int) -> list[Feature]:
        """Tokenise examples; each feature remembers its example via ``example_index``."""

    def encode_settings(self, task: Task, tokenizer: Any, max_length: int) -> tuple[Any, ...]:
        """Resolved settings besides ``max_length`` that shape the features (part of the cache key)."""
        return ()

    def collate(self, features: Sequence[Feature], pad_id: int) -> dict[str, torch.Tensor]:
        """Pad a batch to its own longest sequence (dynamic padding)."""
        ids = pad([f["input_ids"] for f in features], pad_id)
        return {"input_ids": ids, "attention_mask": (ids != pad_id).long() if pad_id >= 0 else ids.ne(-1).long()}

    @abstractmethod
    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean training loss of a batch."""

    def outputs(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """Per-feature outputs kept for evaluation (unpadded)."""
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        arr = logits.float().cpu().numpy()
        return [arr[i, : lengths[i]] for i in range(arr.shape[0])]

    @abstractmethod
    def evaluate(self, task: Task, examples: Sequence[Example], features: Sequence[Feature],
                 outputs: Sequence[np.ndarray]) -> Evaluation:
        """Turn per-feature outputs into per-example metric rows."""
