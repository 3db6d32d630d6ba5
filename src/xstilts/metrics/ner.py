"""Entity-level precision/recall/F1 exactly as seqeval computes it (default, non-strict mode).

We reuse seqeval's own entity extraction, and count per sentence so the corpus F1 can be
bootstrapped: entities never cross a sentence boundary, so summing per-sentence counts equals
seqeval's corpus counts.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from seqeval.metrics.sequence_labeling import get_entities


def entity_stats(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> np.ndarray:
    """Per-sentence ``(correct entities, predicted entities, gold entities)`` rows.

    Entities are extracted the way seqeval's corpus metrics extract them: from all sentences at
    once, joined by an ``O``. Each entity is counted in the sentence where it starts, so the rows
    sum to seqeval's counts exactly. For BIO tags an entity never crosses the joining ``O``; for
    tags without a prefix (UD-POS, as XTREME scores it) seqeval's rules can let a run of ``X``
    (read as type ``_``, like ``O``) at the end of one sentence continue into the next, and only
    extraction over the joined sequence reproduces that. seqeval warns for every tag without a
    prefix; that is the intended use here, so the warning is silenced.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    starts: list[int] = []  # offset of each sentence in the joined sequence
    offset = 0
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
        starts.append(offset)
        offset += len(g) + 1  # the joining "O"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".* seems not to be NE tag", category=UserWarning)
        g_ents = set(get_entities([list(g) for g in gold]))
        p_ents = set(get_entities([list(p) for p in pred]))
    rows = np.zeros((len(gold), 3), dtype=np.float64)
    for column, entities in ((0, g_ents & p_ents), (1, p_ents), (2, g_ents)):
        if entities:
            owner = np.searchsorted(starts, [begin for _, begin, _ in entities], side="right") - 1
            np.add.at(rows[:, column], owner, 1)
    return rows


def token_accuracy_stats(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> np.ndarray:
    """Per-sentence ``(correct tokens, tokens, tokens)`` rows (UD-POS accuracy)."""
    rows = np.zeros((len(gold), 3), dtype=np.float64)
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        correct = sum(a == b for a, b in zip(g, p, strict=True))
        rows[i] = (correct, len(g), len(g))
    return rows
