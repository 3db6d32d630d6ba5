"""Extractive span QA (SQuAD, XQuAD, MLQA, TyDiQA-GoldP): start/end logits over the context.

Encoding: ``question + context`` pairs through the fast tokenizer with ``truncation="only_second"``,
``return_overflowing_tokens`` and ``return_offsets_mapping``, so a long context becomes several
windows that overlap by ``doc_stride`` tokens. Each window is one feature; its gold span is the
(start, end) token pair covering the first gold answer's characters, or (0, 0) — the ``<s>``/CLS
position — when the answer is not wholly inside the window or the question is unanswerable.
Questions longer than ``max_query_length`` tokens are cut, so every window keeps room for context.

Prediction: per window, the ``n_best`` highest start and end logits among context tokens give
candidate spans (end ≥ start, at most ``max_answer_length`` tokens); scores are start + end
logits; the best candidate over all windows of a question is mapped back to context characters
through the offsets. Tasks with unanswerable questions (class attribute ``unanswerable = True``)
predict "" when the CLS score (minimum over windows) beats the best span, as in SQuAD 2.0.

Task options read here: ``doc_stride`` (default ``max_length // 3``), ``max_query_length``
(default ``min(64, max_length // 3)``), ``n_best`` (20), ``max_answer_length`` (30 tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from xstilts.errors import ConfigError
from xstilts.heads.base import Evaluation, Feature, HeadKind, encoder_hidden
from xstilts.metrics.squad import squad_stats
from xstilts.tasks.base import SpanQAExample, Task

Offsets = list[tuple[int, int] | None]  # character span per token; None outside the context


class SpanQAModule(nn.Module):
    """One linear layer to (start, end) logits per token, as BERT/XLM-R QA models do."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.qa_outputs = nn.Linear(hidden_size, 2)

    def forward(self, encoder: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.qa_outputs(encoder_hidden(encoder, batch))  # (batch, length, 2)


def window_settings(task: Task, tokenizer: Any, max_length: int) -> tuple[int, int]:
    """(max question tokens, stride) that leave every window room for context."""
    max_query = int(task.options.get("max_query_length", min(64, max_length // 3)))
    room = max_length - max_query - tokenizer.num_special_tokens_to_add(pair=True)
    if max_query < 1 or room < 2:
        raise ConfigError(f"{task.name}: max_length {max_length} leaves no room for the context "
                          f"after a {max_query}-token question; raise max_length or lower max_query_length")
    stride = int(task.options.get("doc_stride", max_length // 3))
    return max_query, max(0, min(stride, room // 2))


def truncate_questions(questions: Sequence[str], tokenizer: Any, max_tokens: int) -> list[str]:
    """Cut each question after its ``max_tokens``-th token (at that token's character end)."""
    stripped = [q.lstrip() for q in questions]
    enc = tokenizer(stripped, add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for q, offsets in zip(stripped, enc["offset_mapping"], strict=True):
        out.append(q[: offsets[max_tokens - 1][1]] if len(offsets) > max_tokens else q)
    return out


def answer_tokens(offsets: Offsets, start_char: int, end_char: int) -> tuple[int, int]:
    """Token (start, end) covering characters [start_char, end_char), or (0, 0) if not in the window."""
    ctx = [t for t, o in enumerate(offsets) if o is not None]
    if not ctx or end_char <= start_char:
        return 0, 0
    first, last = ctx[0], ctx[-1]
    if offsets[first][0] > start_char or offsets[last][1] < end_char:  # type: ignore[index]
        return 0, 0
    s = first
    while s <= last and offsets[s][1] <= start_char:  # type: ignore[index]
        s += 1
    e = last
    while e >= first and offsets[e][0] >= end_char:  # type: ignore[index]
        e -= 1
    return (s, e) if first <= s <= e <= last else (0, 0)


def best_spans(start_logits: np.ndarray, end_logits: np.ndarray, offsets: Offsets, n_best: int = 20,
               max_answer_length: int = 30) -> list[tuple[float, int, int]]:
    """The ``n_best`` best (score, start token, end token) spans inside the context, best first."""
    n = len(start_logits)
    ctx = np.array([t for t, o in enumerate(offsets) if o is not None and t < n], dtype=np.int64)
    if len(ctx) == 0:
        return []
    starts = ctx[np.argsort(-start_logits[ctx], kind="stable")[:n_best]]
    ends = ctx[np.argsort(-end_logits[ctx], kind="stable")[:n_best]]
    spans = [
        (float(start_logits[s] + end_logits[e]), int(s), int(e))
        for s in starts for e in ends
        if s <= e < s + max_answer_length
    ]
    spans.sort(key=lambda x: (-x[0], x[1], x[2]))
    return spans[:n_best]


def nbest_answers(examples: Sequence[SpanQAExample], features: Sequence[Feature],
                  outputs: Sequence[np.ndarray], n_best: int = 20, max_answer_length: int = 30,
                  allow_null: bool = False) -> list[list[tuple[str, float]]]:
    """Per question, up to ``n_best`` distinct (answer text, score) pairs over all its windows, best
    first; with ``allow_null`` the empty answer competes with its CLS score (min over windows)."""
    by_example: list[list[int]] = [[] for _ in examples]
    for i, feat in enumerate(features):
        by_example[feat["example_index"]].append(i)
    results: list[list[tuple[str, float]]] = []
    for ex, feat_ids in zip(examples, by_example, strict=True):
        best: dict[str, float] = {}
        null_score = np.inf
        for i in feat_ids:
            out, offsets = outputs[i], features[i]["offsets"]
            null_score = min(null_score, float(out[0, 0] + out[0, 1]))
            for score, s, e in best_spans(out[:, 0], out[:, 1], offsets, n_best, max_answer_length):
                text = ex.context[offsets[s][0]: offsets[e][1]]  # type: ignore[index]
                if text.strip() and score > best.get(text, -np.inf):
                    best[text] = score
        if allow_null and feat_ids:
            best[""] = max(best.get("", -np.inf), null_score)
        ranked = sorted(best.items(), key=lambda kv: -kv[1])[:n_best]
        results.append(ranked)
    return results


def predict_answers(examples: Sequence[SpanQAExample], features: Sequence[Feature],
                    outputs: Sequence[np.ndarray], n_best: int = 20, max_answer_length: int = 30,
                    allow_null: bool = False) -> list[str]:
    """The best answer text per question ("" when nothing fits, or when null wins with ``allow_null``)."""
    return [ranked[0][0] if ranked else ""
            for ranked in nbest_answers(examples, features, outputs, n_best, max_answer_length, allow_null)]


class SpanQA(HeadKind):
    kind = "span_qa"

    def build(self, task: Task, hidden_size: int, dropout: float) -> nn.Module:
        return SpanQAModule(hidden_size)  # no dropout layer of its own: the encoder's dropout applies

    def encode(self, task: Task, examples: Sequence[SpanQAExample], tokenizer: Any,
               max_length: int) -> list[Feature]:
        if not getattr(tokenizer, "is_fast", False):
            raise ConfigError(f"{task.name}: span QA needs a fast tokenizer (character offsets)")
        if not examples:
            return []
        max_query, stride = window_settings(task, tokenizer, max_length)
        questions = truncate_questions([ex.question for ex in examples], tokenizer, max_query)
        enc = tokenizer(questions, [ex.context for ex in examples], truncation="only_second",
                        max_length=max_length, stride=stride, return_overflowing_tokens=True,
                        return_offsets_mapping=True)
        features: list[Feature] = []
        for w, ids in enumerate(enc["input_ids"]):
            ex_index = int(enc["overflow_to_sample_mapping"][w])
            ex = examples[ex_index]
            seq_ids = enc.sequence_ids(w)
            offsets: Offsets = [tuple(o) if s == 1 else None  # type: ignore[misc]
                                for o, s in zip(enc["offset_mapping"][w], seq_ids, strict=True)]
            start, end = 0, 0
            if ex.answers:
                text, char = ex.answers[0]
                start, end = answer_tokens(offsets, char, char + len(text))
            features.append({"input_ids": ids, "length": len(ids), "example_index": ex_index,
                             "start": start, "end": end, "offsets": offsets})
        return features

    def collate(self, features: Sequence[Feature], pad_id: int) -> dict[str, torch.Tensor]:
        batch = super().collate(features, pad_id)
        batch["start_positions"] = torch.tensor([f["start"] for f in features], dtype=torch.long)
        batch["end_positions"] = torch.tensor([f["end"] for f in features], dtype=torch.long)
        return batch

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = logits.float().masked_fill((batch["attention_mask"] == 0).unsqueeze(-1), -1e4)
        start = nn.functional.cross_entropy(logits[..., 0], batch["start_positions"])
        end = nn.functional.cross_entropy(logits[..., 1], batch["end_positions"])
        return (start + end) / 2

    def evaluate(self, task: Task, examples: Sequence[SpanQAExample], features: Sequence[Feature],
                 outputs: Sequence[np.ndarray]) -> Evaluation:
        preds = predict_answers(examples, features, outputs, int(task.options.get("n_best", 20)),
                                int(task.options.get("max_answer_length", 30)),
                                bool(getattr(task, "unanswerable", False)))
        stats = squad_stats([[text for text, _ in ex.answers] for ex in examples], preds,
                            [ex.answer_language for ex in examples])
        ev = Evaluation(predictions=preds)
        for metric in task.all_metrics():
            if metric not in stats:
                raise ValueError(f"span QA head cannot compute metric {metric!r}")
            ev.stats[metric] = stats[metric]
        return ev
