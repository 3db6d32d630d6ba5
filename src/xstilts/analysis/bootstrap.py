"""The paired bootstrap engine: resample test examples and seeds, re-aggregate metrics exactly.

Why this shape: an effect estimate has two sources of noise, the finite test set and the
training seed. One replicate draws both: a multiset of seeds (the same draw for both arms, so
seed pairing survives) and a multiset of test examples (the same indices for every run of a
target+language, so example pairing survives). Corpus metrics are not means of per-example
scores (micro-F1), so each replicate re-aggregates the summed ``(hits, n_pred, n_gold)``
sufficient statistics through :mod:`xstilts.metrics.stats`.

Speed: a replicate is a vector of example counts; ``counts @ stats`` gives every run's totals
for a chunk of replicates in one matrix product, so 2000 replicates of 10 000 examples take
a fraction of a second per language.
"""

from __future__ import annotations

import zlib

import numpy as np

from xstilts.metrics.stats import scores_from_resamples

# Replicates are processed in chunks of about this many (replicate, example) cells: small
# enough for the count matrix to stay in cache, large enough to amortise Python overhead.
_CHUNK_CELLS = 1_000_000


def rng_for(seed: int, *parts: object) -> np.random.Generator:
    """A random stream determined by ``seed`` and a name, not by the order of the analysis.

    Streams keyed by the same name are identical, which is how draws are shared on purpose
    (e.g. the seed draw of one intermediate setting across languages and targets).
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


def example_resample_scores(
    metric: str, stats: list[np.ndarray], n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Scores of each run (rows) under the same ``n_boot`` example resamples (columns).

    All arrays must describe the same examples in the same order.
    """
    if not stats:
        return np.empty((0, n_boot))
    n = len(stats[0])
    if any(len(s) != n for s in stats):
        raise ValueError("example stats of one language must be aligned (same length)")
    n_runs = len(stats)
    stacked = np.concatenate([np.asarray(s, dtype=np.float64) for s in stats], axis=1)  # (n, 3R)
    out = np.empty((n_runs, n_boot))
    chunk = max(1, min(n_boot, _CHUNK_CELLS // max(n, 1)))
    for start in range(0, n_boot, chunk):
        c = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(c, n))
        idx += (np.arange(c, dtype=idx.dtype) * n)[:, None]
        counts = np.bincount(idx.ravel(), minlength=c * n).reshape(c, n).astype(np.float64)
        totals = counts @ stacked  # (c, 3R)
        out[:, start : start + c] = (
            aggregate_totals(metric, totals.reshape(c * n_runs, 3)).reshape(c, n_runs).T
        )
    return out


def seed_draws(n_seeds: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n_seeds)`` seed indices drawn with replacement (all zeros for one seed)."""
    if n_seeds <= 1:
        return np.zeros((n_boot, max(n_seeds, 1)), dtype=np.int64)
    return rng.integers(0, n_seeds, size=(n_boot, n_seeds))


def resampled_mean(scores: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Per replicate, the mean over the drawn seeds of that replicate's score.

    ``scores`` is ``(n_seeds, n_boot)``: seed ``s`` scored under example resample ``b``.
    """
    n_boot = scores.shape[1]
    return scores[draws, np.arange(n_boot)[:, None]].mean(axis=1)


def percentile_ci(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval; NaN when there are no finite replicates."""
    reps = np.asarray(replicates, dtype=np.float64)
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(reps, [tail, 100.0 - tail])
    return float(lo), float(hi)


def bootstrap_p(replicates: np.ndarray) -> float:
    """Two-sided p-value for "no effect", by inverting the percentile interval.

    It is the smallest ``alpha`` whose ``1 - alpha`` percentile interval still touches zero,
    so "p < 0.05" and "the 95 % CI excludes 0" agree. The +1 terms keep p above zero, as
    fits a finite number of replicates.
    """
    reps = np.asarray(replicates, dtype=np.float64)
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return float("nan")
    below = (np.count_nonzero(reps <= 0) + 1) / (reps.size + 1)
    above = (np.count_nonzero(reps >= 0) + 1) / (reps.size + 1)
    return float(min(1.0, 2.0 * min(below, above)))
