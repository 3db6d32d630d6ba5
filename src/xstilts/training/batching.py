"""Batches of similar length, so that padding (wasted compute) stays small.

Training: shuffle, cut into pools of ``pool`` batches, sort each pool by length, cut into
batches, shuffle the batches. Randomness stays (every epoch differs, batches are shuffled) while
padding drops by an order of magnitude. Evaluation: sort everything by length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def train_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator,
                  bucket: bool = True, pool: int = 50) -> list[list[int]]:
    """One epoch of batches of feature indices."""
    order = rng.permutation(len(lengths))
    if bucket:
        lens = np.asarray(lengths)
        chunk = batch_size * pool
        order = np.concatenate([
            part[np.argsort(lens[part], kind="stable")] for part in np.array_split(order, max(1, -(-len(order) // chunk)))
        ]) if len(order) else order
    batches = [order[i: i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if bucket:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def eval_batches(lengths: Sequence[int], batch_size: int, bucket: bool = True,
                 max_tokens: int | None = None) -> list[list[int]]:
    """Batches for inference; with bucketing, longest first and sized by a token budget."""
    idx = np.argsort(-np.asarray(lengths), kind="stable") if bucket else np.arange(len(lengths))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in idx.tolist():
        longest_if = max(longest, lengths[i])
        too_many_tokens = max_tokens is not None and current and longest_if * (len(current) + 1) > max_tokens
        if len(current) >= batch_size or too_many_tokens:
            batches.append(current)
            current, longest_if = [], lengths[i]
        current.append(i)
        longest = longest_if
    if current:
        batches.append(current)
    return batches
