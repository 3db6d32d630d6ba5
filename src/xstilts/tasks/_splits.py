"""Deterministic train/eval splits of a single real file, by group (context, video, article).

Used where only one labelled split of a data set is available offline. Whole groups go to one
side, so no evaluation context was seen in training. The permutation seed is fixed: the split is
part of the (stand-in) benchmark and must not change with the run's seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPLIT_SEED = 20200523


def group_split(groups: Sequence[str], eval_fraction: float, seed: int = SPLIT_SEED,
                ) -> tuple[list[int], list[int]]:
    """Row indices (train, eval), in file order; about ``eval_fraction`` of the groups go to eval."""
    if not 0 < eval_fraction < 1:
        raise ValueError(f"eval_fraction must be strictly between 0 and 1, not {eval_fraction}")
    ids: dict[str, int] = {}
    group_of = np.array([ids.setdefault(g, len(ids)) for g in groups], dtype=np.int64)
    n_groups = len(ids)
    if n_groups < 2:
        raise ValueError("need at least two groups to split")
    order = np.random.default_rng(seed).permutation(n_groups)
    n_eval = min(n_groups - 1, max(1, int(round(n_groups * eval_fraction))))
    is_eval = np.zeros(n_groups, dtype=bool)
    is_eval[order[:n_eval]] = True
    rows = np.arange(len(groups))
    return rows[~is_eval[group_of]].tolist(), rows[is_eval[group_of]].tolist()


def split_group_ids(groups: np.ndarray, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, eval) for rows labelled with dense group ids 0..G-1.

    A fixed-seed permutation of the groups sends the first round(G × train_fraction) of them to
    train, so rows of one group (translations of one premise, one sentence pair) never straddle.
    """
    n_groups = int(groups.max()) + 1
    order = np.random.default_rng(seed).permutation(n_groups)
    is_train_group = np.zeros(n_groups, dtype=bool)
    is_train_group[order[: int(round(n_groups * train_fraction))]] = True
    rows = np.arange(len(groups))
    return rows[is_train_group[groups]], rows[~is_train_group[groups]]
