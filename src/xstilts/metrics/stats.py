"""Per-example sufficient statistics, so that any corpus metric can be bootstrapped.

Every evaluation stores, per example, a row ``(hits, n_pred, n_gold)``:

* ``accuracy``, ``token_accuracy``, ``exact_match``, ``squad_f1``: ``hits`` is the example's
  score (correct tokens, 0/1 or a per-question F1) and ``n_gold`` its weight; the corpus score
  is ``sum(hits) / sum(n_gold)``.
* ``f1`` (entity-level micro F1, as seqeval): ``hits`` = correctly predicted entities,
  ``n_pred`` = predicted entities, ``n_gold`` = gold entities; the corpus score is
  ``2 * sum(hits) / (sum(n_pred) + sum(n_gold))``.

Resampling rows and re-aggregating gives an exact bootstrap of the corpus metric.
All scores are on a 0–100 scale.
"""

from __future__ import annotations

import numpy as np

MICRO_F1_METRICS = {"f1"}


def score_from_stats(metric: str, stats: np.ndarray) -> float:
    """Corpus score (0–100) of one metric from its per-example ``(hits, n_pred, n_gold)`` rows."""
    stats = np.asarray(stats, dtype=np.float64)
    if stats.ndim != 2 or stats.shape[1] != 3:
        raise ValueError(f"stats must have shape (n, 3), got {stats.shape}")
    total = stats.sum(axis=0)
    return float(_aggregate(metric, total[None, :])[0])


def scores_from_resamples(metric: str, stats: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Corpus scores for many resamples at once; ``index`` is (n_resamples, n) row indices."""
    stats = np.asarray(stats, dtype=np.float64)
    totals = stats[index].sum(axis=1)  # (n_resamples, 3)
    return _aggregate(metric, totals)


def _aggregate(metric: str, totals: np.ndarray) -> np.ndarray:
    hits, n_pred, n_gold = totals[:, 0], totals[:, 1], totals[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric in MICRO_F1_METRICS:
            denom = n_pred + n_gold
            out = np.where(denom > 0, 200.0 * hits / np.where(denom > 0, denom, 1), 0.0)
        else:
            out = np.where(n_gold > 0, 100.0 * hits / np.where(n_gold > 0, n_gold, 1), 0.0)
    return out
