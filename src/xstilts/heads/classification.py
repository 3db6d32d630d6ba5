"""Sentence and sentence-pair classification from the first token's hidden state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from xstilts.heads.base import Evaluation, Feature, HeadKind, encoder_hidden
from xstilts.metrics.classification import accuracy_stats
from xstilts.models.first_token import first_token_only
from xstilts.tasks.base import ClassificationExample, Task


class ClassificationModule(nn.Module):
    """Dense + tanh + linear on ``<s>``, the usual RoBERTa-style classification head."""

    def __init__(self, hidden_size: int, n_labels: int, dropout: float):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, n_labels)

    def forward(self, encoder: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with first_token_only(encoder):  # only <s> is read: the last layer may skip the rest (models/first_token.py)
            cls = encoder_hidden(encoder, batch)[:, 0]
        return self.out(self.dropout(torch.tanh(self.dense(self.dropout(cls)))))


class Classification(HeadKind):
    kind = "classification"

    def build(self, task: Task, hidden_size: int, dropout: float) -> nn.Module:
        return ClassificationModule(hidden_size, len(task.labels), dropout)

    def encode(self, task: Task, examples: Sequence[ClassificationExample], tokenizer: Any,
               max_length: int) -> list[Feature]:
        label_id = {label: i for i, label in enumerate(task.labels)}
        first = [ex.text_a for ex in examples]
        pairs = all(ex.text_b is not None for ex in examples)
        second = [ex.text_b for ex in examples] if pairs else None
        enc = tokenizer(first, second, truncation="longest_first" if pairs else True, max_length=max_length)
        return [
            {"input_ids": ids, "label": label_id[ex.label], "length": len(ids), "example_index": i}
            for i, (ids, ex) in enumerate(zip(enc["input_ids"], examples, strict=True))
        ]

    def collate(self, features: Sequence[Feature], pad_id: int) -> dict[str, torch.Tensor]:
        batch = super().collate(features, pad_id)
        batch["labels"] = torch.tensor([f["label"] for f in features], dtype=torch.long)
        return batch

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.float(), batch["labels"])

    def outputs(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        return list(logits.float().cpu().numpy())

    def evaluate(self, task: Task, examples: Sequence[ClassificationExample], features: Sequence[Feature],
                 outputs: Sequence[np.ndarray]) -> Evaluation:
        pred = [task.labels[int(np.argmax(o))] for o in outputs]
        return Evaluation({"accuracy": accuracy_stats([ex.label for ex in examples], pred)}, predictions=pred)
