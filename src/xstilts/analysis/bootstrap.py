"""Building blocks of item resampling: named random streams and exact re-aggregation of metrics.

Corpus metrics are not means of per-example scores (micro-F1), so a resample re-aggregates the
summed ``(hits, n_pred, n_gold)`` sufficient statistics through :mod:`xstilts.metrics.stats`.
The resampling itself is in :mod:`xstilts.analysis.scores`, the intervals in
:mod:`xstilts.analysis.inference`.
"""

from __future__ import annotations

import zlib

import numpy as np

from xstilts.metrics.stats import scores_from_resamples


def rng_for(seed: int, *parts: object) -> np.random.Generator:
    """A random stream determined by ``seed`` and a name, not by the order of the analysis.

    Streams keyed by the same name are identical, which is how draws are shared on purpose
    (e.g. one draw of items for every language of a parallel test set).
    """
    keys = [zlib.crc32(repr(p).encode()) for p in parts]
    return np.random.default_rng(np.random.SeedSequence([int(seed), *keys]))


def aggregate_totals(metric: str, totals: np.ndarray) -> np.ndarray:
    """Corpus scores of summed ``(hits, n_pred, n_gold)`` rows, via the metrics contract.

    ``metrics.stats`` exposes aggregation only through resampling, so each total is passed as
    a one-row "resample" of itself; this keeps one definition of every metric.
    """
    totals = np.asarray(totals, dtype=np.float64).reshape(-1, 3)
    return scores_from_resamples(metric, totals, np.arange(len(totals))[:, None])
