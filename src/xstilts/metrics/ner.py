"""Entity-level precision/recall/F1 exactly as seqeval computes it (default, non-strict mode).

We reuse seqeval's own entity extraction, and count per sentence so the corpus F1 can be
bootstrapped: entities never cross a sentence boundary, so summing per-sentence counts equals
seqeval's corpus counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from seqeval.metrics.sequence_labeling import get_entities


def entity_stats(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> np.ndarray:
    """Per-sentence ``(correct entities, predicted entities, gold entities)`` rows."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    rows = np.zeros((len(gold), 3), dtype=np.float64)
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
        g_ents = set(get_entities(list(g)))
        p_ents = set(get_entities(list(p)))
        rows[i] = (len(g_ents & p_ents), len(p_ents), len(g_ents))
    return rows


def token_accuracy_stats(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> np.ndarray:
    """Per-sentence ``(correct tokens, tokens, tokens)`` rows (UD-POS accuracy)."""
    rows = np.zeros((len(gold), 3), dtype=np.float64)
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        correct = sum(a == b for a, b in zip(g, p, strict=True))
        rows[i] = (correct, len(g), len(g))
    return rows
