"""Multiple choice (HellaSwag, CommonsenseQA, Cosmos QA, SocialIQA): one score per choice.

Each (context, choice) pair is encoded as a sentence pair: first segment the context, second the
question (when there is one) followed by the choice — for HellaSwag ``ctx_a`` / ``ctx_b + ending``,
for Cosmos QA ``context`` / ``question + answer``. A feature holds all C sequences of an example;
a batch is (B, C, L), which the module flattens to (B·C, L) for the encoder and scores with a
RoBERTa-style head on ``<s>``; the loss is cross-entropy over the C scores (softmax over choices).
Examples with fewer choices than others in a batch get padded choices scored as -inf.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from xstilts.heads.base import Evaluation, Feature, HeadKind, pad
from xstilts.metrics.classification import accuracy_stats
from xstilts.models.first_token import first_token_only
from xstilts.tasks.base import MultipleChoiceExample, Task


class MultipleChoiceModule(nn.Module):
    """Dense + tanh + linear-to-1 on ``<s>`` of every (context, choice) sequence."""

    def __init__(self, hidden_size: int, dropout: float):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, 1)

    def forward(self, encoder: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids, mask, valid = batch["input_ids"], batch["attention_mask"], batch["choice_mask"].bool()
        b, c, length = ids.shape
        keep = valid.reshape(-1)
        flat_ids, flat_mask = ids.reshape(b * c, length)[keep], mask.reshape(b * c, length)[keep]
        with first_token_only(encoder):  # only <s> is read: the last layer may skip the rest (models/first_token.py)
            cls = encoder(input_ids=flat_ids, attention_mask=flat_mask).last_hidden_state[:, 0]
        flat_scores = self.out(self.dropout(torch.tanh(self.dense(self.dropout(cls))))).squeeze(-1)
        scores = torch.full((b * c,), torch.finfo(flat_scores.dtype).min, dtype=flat_scores.dtype,
                            device=flat_scores.device)
        scores = scores.masked_scatter(keep, flat_scores)
        return scores.reshape(b, c)


def choice_pairs(ex: MultipleChoiceExample) -> list[tuple[str, str]]:
    """(first segment, second segment) per choice."""
    prefix = f"{ex.question} " if ex.question else ""
    return [(ex.context, prefix + choice) for choice in ex.choices]


class MultipleChoice(HeadKind):
    kind = "multiple_choice"

    def build(self, task: Task, hidden_size: int, dropout: float) -> nn.Module:
        return MultipleChoiceModule(hidden_size, dropout)

    def encode(self, task: Task, examples: Sequence[MultipleChoiceExample], tokenizer: Any,
               max_length: int) -> list[Feature]:
        pairs = [pair for ex in examples for pair in choice_pairs(ex)]
        if not pairs:
            return []
        enc = tokenizer([p[0] for p in pairs], [p[1] for p in pairs], truncation="longest_first",
                        max_length=max_length)
        features: list[Feature] = []
        pos = 0
        for i, ex in enumerate(examples):
            ids = enc["input_ids"][pos: pos + len(ex.choices)]
            pos += len(ex.choices)
            # length = tokens of the padded (C, L) block: what bucketing and eval budgets should see
            features.append({"input_ids": ids, "label": ex.label, "n_choices": len(ids),
                             "length": len(ids) * max(len(s) for s in ids), "example_index": i})
        return features

    def collate(self, features: Sequence[Feature], pad_id: int) -> dict[str, torch.Tensor]:
        n_choices = max(f["n_choices"] for f in features)
        length = max(len(s) for f in features for s in f["input_ids"])
        ids = torch.full((len(features), n_choices, length), pad_id, dtype=torch.long)
        choice_mask = torch.zeros((len(features), n_choices), dtype=torch.long)
        for i, f in enumerate(features):
            ids[i, : f["n_choices"]] = pad(f["input_ids"], pad_id, length)
            choice_mask[i, : f["n_choices"]] = 1
        attention = torch.zeros_like(ids)
        for i, f in enumerate(features):
            for j, seq in enumerate(f["input_ids"]):
                attention[i, j, : len(seq)] = 1
        return {"input_ids": ids, "attention_mask": attention, "choice_mask": choice_mask,
                "labels": torch.tensor([f["label"] for f in features], dtype=torch.long)}

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.float(), batch["labels"])

    def outputs(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        arr = logits.float().cpu().numpy()
        counts = batch["choice_mask"].sum(dim=1).tolist()
        return [arr[i, : counts[i]] for i in range(arr.shape[0])]

    def evaluate(self, task: Task, examples: Sequence[MultipleChoiceExample], features: Sequence[Feature],
                 outputs: Sequence[np.ndarray]) -> Evaluation:
        pred = [int(np.argmax(o)) for o in outputs]
        return Evaluation({"accuracy": accuracy_stats([ex.label for ex in examples], pred)})
