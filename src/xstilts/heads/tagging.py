"""Token tagging (NER, POS, CCG): predict a tag for the first sub-token of every word.

Other sub-tokens are ignored in the loss. Every word is scored, as XTREME does: a sentence longer
than ``max_length`` sub-tokens becomes several overlapping windows (features), each starting at a
word and, where it can, ending before one. Consecutive windows share at most ``stride`` sub-tokens.

Ownership: a word that falls in several windows is predicted (and, in training, labelled) only by
the window where it has the most context, i.e. where ``min(sub-tokens left of it, sub-tokens right
of it)`` is largest (ties go to the earlier window) -- the "max context" rule of BERT's SQuAD code;
with equal windows that is the window whose centre is closest. So every word of every sentence
gets exactly one prediction and appears exactly once in the loss. A word with no sub-token at all
(e.g. a lone zero-width space) is encoded as the unknown token so that it is predicted too.

Task options read here: ``stride`` (sub-tokens shared by consecutive windows; default and maximum
half of the window's room for words, ``max_length`` minus the special tokens) and ``windows``
(default true; false truncates every sentence at ``max_length`` as XTREME's training code does).
A word that still gets no prediction -- only possible with ``windows = false`` -- is scored as
wrong: it never matches the gold tag for token accuracy, and for entity F1 it predicts no entity
(seqeval's ``O``), so a gold entity touching it is always missed.

Features: ``input_ids``, ``length``, ``example_index``, ``labels`` (IGNORE except at owned first
sub-tokens) and ``first_pos``, one entry per word of the sentence: the position of its first
sub-token in this window if this window owns it, else -1.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from xstilts.errors import ConfigError
from xstilts.heads.base import Evaluation, Feature, HeadKind, encoder_hidden, pad
from xstilts.metrics.ner import entity_stats, token_accuracy_stats
from xstilts.tasks.base import TaggingExample, Task

IGNORE = -100
MISSING = "<no prediction>"  # the predicted tag of a word no window owns; equals no gold tag


class TaggingModule(nn.Module):
    def __init__(self, hidden_size: int, n_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, n_labels)

    def forward(self, encoder: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.dropout(encoder_hidden(encoder, batch)))


def window_settings(task: Task, tokenizer: Any, max_length: int) -> tuple[int, int, bool]:
    """(room for word sub-tokens per window, stride, windows on) for ``task`` at ``max_length``."""
    room = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if room < 1:
        raise ConfigError(f"{task.name}: max_length {max_length} leaves no room for words after the special tokens")
    stride = int(task.options.get("stride", room // 2))
    return room, max(0, min(stride, room // 2)), bool(task.options.get("windows", True))


def plan_windows(word_starts: Sequence[int], n_tokens: int, room: int, stride: int) -> list[tuple[int, int]]:
    """Spans ``[start, end)`` over a sentence's ``n_tokens`` word sub-tokens, ``word_starts`` sorted.

    Each window starts at a word and ends before a word if one fits; a single word longer than
    ``room`` is cut after its first sub-tokens (its first sub-token, the one scored, is kept).
    The next window starts at the first word that leaves at most ``stride`` sub-tokens of overlap.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        limit = start + room
        if limit >= n_tokens:
            spans.append((start, n_tokens))
            return spans
        last = word_starts[bisect_right(word_starts, limit) - 1]
        end = last if last > start else limit
        spans.append((start, end))
        following = bisect_left(word_starts, max(end - stride, start + 1))
        if following == len(word_starts):  # only the tail of a long last word is left
            return spans
        start = word_starts[following]


def owners(word_starts: Sequence[int], spans: Sequence[tuple[int, int]]) -> list[int]:
    """For each word, the window (index into ``spans``) that predicts it, by the max-context rule; -1: none."""
    owner = [-1] * len(word_starts)
    best = [-1] * len(word_starts)
    for k, (start, end) in enumerate(spans):
        for w in range(bisect_left(word_starts, start), bisect_left(word_starts, end)):
            context = min(word_starts[w] - start, end - 1 - word_starts[w])
            if context > best[w]:
                owner[w], best[w] = k, context
    return owner


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after one sequence (``<s>`` and ``</s>``, [CLS] and [SEP])."""
    template = tokenizer([["x"]], is_split_into_words=True)
    ids, words = template["input_ids"][0], template.word_ids(0)
    first = words.index(0)
    last = len(words) - 1 - words[::-1].index(0)
    return ids[:first], ids[last + 1:]


class Tagging(HeadKind):
    kind = "tagging"

    def build(self, task: Task, hidden_size: int, dropout: float) -> nn.Module:
        return TaggingModule(hidden_size, len(task.labels), dropout)

    def encode_settings(self, task: Task, tokenizer: Any, max_length: int) -> tuple[Any, ...]:
        return window_settings(task, tokenizer, max_length)

    def encode(self, task: Task, examples: Sequence[TaggingExample], tokenizer: Any,
               max_length: int) -> list[Feature]:
        if not examples:
            return []
        room, stride, windows = window_settings(task, tokenizer, max_length)
        label_id = {label: i for i, label in enumerate(task.labels)}
        prefix, suffix = special_tokens(tokenizer)
        # whole sentences without special tokens or truncation; the windows are cut from these
        enc = tokenizer([list(ex.tokens) for ex in examples], is_split_into_words=True,
                        add_special_tokens=False, verbose=False)
        features: list[Feature] = []
        for i, ex in enumerate(examples):
            pieces: list[list[int]] = [[] for _ in ex.tokens]
            for token_id, w in zip(enc["input_ids"][i], enc.word_ids(i), strict=True):
                if w is not None:
                    pieces[w].append(token_id)
            content: list[int] = []
            word_starts: list[int] = []
            for piece in pieces:
                word_starts.append(len(content))
                content.extend(piece or [tokenizer.unk_token_id])
            if windows:
                spans = plan_windows(word_starts, len(content), room, stride)
            else:
                spans = [(0, min(room, len(content)))]
            owner = owners(word_starts, spans)
            for k, (start, end) in enumerate(spans):
                ids = prefix + content[start:end] + suffix
                labels = [IGNORE] * len(ids)
                first_pos = [-1] * len(ex.tokens)
                for w, word_start in enumerate(word_starts):
                    if owner[w] == k:
                        first_pos[w] = len(prefix) + word_start - start
                        labels[first_pos[w]] = label_id[ex.tags[w]]
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

    def predict_tags(self, task: Task, features: Sequence[Feature], outputs: Sequence[np.ndarray],
                     n_examples: int | None = None) -> list[list[str]]:
        """Word-level predicted tags per example, merged over its windows; :data:`MISSING` where none."""
        if n_examples is None:
            n_examples = 1 + max((f["example_index"] for f in features), default=-1)
        preds: list[list[str] | None] = [None] * n_examples
        for feat, out in zip(features, outputs, strict=True):
            words = preds[feat["example_index"]]
            if words is None:
                words = preds[feat["example_index"]] = [MISSING] * len(feat["first_pos"])
            best = out.argmax(axis=-1)
            for w, p in enumerate(feat["first_pos"]):
                if p >= 0:
                    words[w] = task.labels[int(best[p])]
        if any(words is None for words in preds):
            raise ValueError("an example has no feature: features and examples do not match")
        return preds  # type: ignore[return-value]

    def evaluate(self, task: Task, examples: Sequence[TaggingExample], features: Sequence[Feature],
                 outputs: Sequence[np.ndarray]) -> Evaluation:
        preds = self.predict_tags(task, features, outputs, len(examples))
        gold = [list(ex.tags) for ex in examples]
        # a word no window predicts is "no entity" for F1, and so it is written in a submission
        as_entities = [["O" if t == MISSING else t for t in p] for p in preds]
        ev = Evaluation(predictions=as_entities)
        for metric in task.all_metrics():
            if metric == "f1":
                ev.stats[metric] = entity_stats(gold, as_entities)
            elif metric == "token_accuracy":
                ev.stats[metric] = token_accuracy_stats(gold, preds)
            else:
                raise ValueError(f"tagging head cannot compute metric {metric!r}")
        return ev
