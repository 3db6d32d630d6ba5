"""Token tagging (NER, POS, CCG): predict a tag for the first sub-token of every word.

Other sub-tokens are ignored in the loss. Words that fall beyond ``max_length`` get no sub-token;
they are predicted as ``O`` (or the task's first label) and still scored, never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from xstilts.heads.base import Evaluation, Feature, HeadKind, encoder_hidden, pad
from xstilts.metrics.ner import entity_stats, token_accuracy_stats
from xstilts.tasks.base import TaggingExample, Task

IGNORE = -100


class TaggingModule(nn.Module):
    def __init__(self, hidden_size: int, n_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, n_labels)

    def forward(self, encoder: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.dropout(encoder_hidden(encoder, batch)))


class Tagging(HeadKind):
    kind = "tagging"

    def build(self, task: Task, hidden_size: int) -> nn.Module:
        return TaggingModule(hidden_size, len(task.labels))

    def encode(self, task: Task, examples: Sequence[TaggingExample], tokenizer: Any,
               max_length: int) -> list[Feature]:
        label_id = {label: i for i, label in enumerate(task.labels)}
        enc = tokenizer([list(ex.tokens) for ex in examples], is_split_into_words=True,
                        truncation=True, max_length=max_length)
        features: list[Feature] = []
        for i, ex in enumerate(examples):
            word_ids = enc.word_ids(i)
            labels: list[int] = []
            first_pos = [-1] * len(ex.tokens)  # position of each word's first sub-token
            previous = None
            for pos, w in enumerate(word_ids):
                if w is not None and w != previous:
                    labels.append(label_id[ex.tags[w]])
                    first_pos[w] = pos
                else:
                    labels.append(IGNORE)
                previous = w
            ids = enc["input_ids"][i]
            features.append({"input_ids": ids, "labels": labels, "first_pos": first_pos,
                             "length": len(ids), "example_index": i})
        return features

    def collate(self, features: Sequence[Feature], pad_id: int) -> dict[str, torch.Tensor]:
        batch = super().collate(features, pad_id)
        batch["labels"] = pad([f["labels"] for f in features], IGNORE, batch["input_ids"].shape[1])
        return batch

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(),
                                           ignore_index=IGNORE)

    def predict_tags(self, task: Task, features: Sequence[Feature], outputs: Sequence[np.ndarray]
                     ) -> list[list[str]]:
        """Word-level predicted tags; words without a sub-token get the default label."""
        default = "O" if "O" in task.labels else task.labels[0]
        preds: list[list[str]] = []
        for feat, out in zip(features, outputs, strict=True):
            best = out.argmax(axis=-1)
            preds.append([task.labels[int(best[p])] if p >= 0 else default for p in feat["first_pos"]])
        return preds

    def evaluate(self, task: Task, examples: Sequence[TaggingExample], features: Sequence[Feature],
                 outputs: Sequence[np.ndarray]) -> Evaluation:
        preds = self.predict_tags(task, features, outputs)
        gold = [list(ex.tags) for ex in examples]
        ev = Evaluation()
        for metric in task.all_metrics():
            if metric == "f1":
                ev.stats[metric] = entity_stats(gold, preds)
            elif metric == "token_accuracy":
                ev.stats[metric] = token_accuracy_stats(gold, preds)
            else:
                raise ValueError(f"tagging head cannot compute metric {metric!r}")
        return ev
