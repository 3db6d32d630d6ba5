"""Accuracy, with per-example rows so it can be bootstrapped."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def accuracy_stats(gold: Sequence[object], pred: Sequence[object]) -> np.ndarray:
    """Per-example ``(correct, 1, 1)`` rows."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predicted")
    correct = np.array([g == p for g, p in zip(gold, pred, strict=True)], dtype=np.float64)
    return np.stack([correct, np.ones_like(correct), np.ones_like(correct)], axis=1).reshape(-1, 3)
