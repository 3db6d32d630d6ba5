"""Retrieval tasks: the base class, nearest neighbours and margin-based mining (no training).

XTREME scores its two retrieval tasks (Tatoeba, BUCC 2018) on the encoder as it is: sentences are
embedded (:mod:`xstilts.evaluation.embed`) and compared by cosine similarity. This module holds
what the task modules need for that: the :class:`RetrievalTask` base class and the search and
scoring on embeddings.

Neighbour search uses faiss (``IndexFlatIP`` on unit vectors, i.e. exact cosine) when it is
installed and chunked numpy matrix products otherwise; both give the same neighbours (ties
broken towards the lower index in numpy). Mining follows Artetxe & Schwenk (2019) as XTREME's
``utils_retrieve.mine_bitext`` runs it: ratio margin ``cos(x, y) / ((m_k(x) + m_k(y)) / 2)``
with ``m_k`` the mean cosine to the k=4 nearest neighbours in the other language, candidates
from both directions, then the "max" strategy (best-scoring candidates first, each sentence
used once).

Only numpy is imported at module level: task modules import this file, and the CLI must not
pay for torch just to list tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from xstilts.errors import ConfigError
from xstilts.tasks.base import HEAD_OPTIONS, Task

#: The options every retrieval task understands (``[target.task_options.<task>]``).
EMBEDDING_OPTIONS = HEAD_OPTIONS["retrieval"]

# (texts, language) -> float32 array (n, dim), one row per text
Embedder = Callable[[Sequence[str], str], np.ndarray]


def normalize(x: np.ndarray) -> np.ndarray:
    """Unit-length float32 rows (cosine = dot product); an all-zero row stays zero."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def knn(queries: np.ndarray, database: np.ndarray, k: int, backend: str = "auto",
        ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar database rows of every query by inner product (cosine on unit rows).

    Returns (similarities, indices), each (n_queries, k), best first. ``backend``: ``auto``
    (faiss if installed), ``faiss`` or ``numpy``.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    database = np.ascontiguousarray(database, dtype=np.float32)
    k = min(k, database.shape[0])
    if backend not in ("auto", "faiss", "numpy"):
        raise ConfigError(f"retrieval option 'backend' must be auto, faiss or numpy, not {backend!r}")
    if backend == "faiss" or (backend == "auto" and faiss_available()):
        try:
            import faiss
        except ImportError:
            raise ConfigError("retrieval backend 'faiss' requested but faiss is not installed "
                              "(pip install faiss-cpu)") from None
        index = faiss.IndexFlatIP(database.shape[1])
        index.add(database)
        sims, idx = index.search(queries, k)
        return sims, idx.astype(np.int64)
    return _knn_numpy(queries, database, k)


def _knn_numpy(queries: np.ndarray, database: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n = queries.shape[0]
    sims_out = np.zeros((n, k), dtype=np.float32)
    idx_out = np.zeros((n, k), dtype=np.int64)
    chunk = max(1, (1 << 24) // max(1, database.shape[0]))  # ~64 MB of similarities at a time
    for start in range(0, n, chunk):
        sims = queries[start:start + chunk] @ database.T
        if k < sims.shape[1]:
            part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        else:
            part = np.broadcast_to(np.arange(sims.shape[1]), sims.shape)
        part_sims = np.take_along_axis(sims, part, axis=1)
        # best first; equal similarities -> lower index first
        order = np.lexsort((part, -part_sims), axis=1)
        idx_out[start:start + chunk] = np.take_along_axis(part, order, axis=1)
        sims_out[start:start + chunk] = np.take_along_axis(part_sims, order, axis=1)
    return sims_out, idx_out


def nearest_indices(queries: np.ndarray, database: np.ndarray, backend: str = "auto") -> np.ndarray:
    """The index of every query's nearest database row by cosine."""
    _, idx = knn(normalize(queries), normalize(database), 1, backend)
    return idx[:, 0]


def aligned_hit_stats(nearest: np.ndarray) -> np.ndarray:
    """Per-query ``(hit, 1, 1)`` rows: is query i's nearest row row i (its translation)?"""
    hits = (np.asarray(nearest) == np.arange(len(nearest))).astype(np.float64)
    return np.stack([hits, np.ones_like(hits), np.ones_like(hits)], axis=1).reshape(-1, 3)


def nearest_accuracy_stats(queries: np.ndarray, database: np.ndarray, backend: str = "auto") -> np.ndarray:
    """Per-query ``(hit, 1, 1)`` rows: is the nearest database row the one at the query's index?

    This is Tatoeba's scoring: line i of each file translates line i of the other.
    """
    return aligned_hit_stats(nearest_indices(queries, database, backend))


def margin_scores(x: np.ndarray, y: np.ndarray, k: int = 4, backend: str = "auto",
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ratio-margin scores of every source's and target's k nearest candidates.

    Returns (fwd_idx, fwd_scores, bwd_idx, bwd_scores): ``fwd_*`` (n_x, k) are the target
    neighbours of each source and their margin scores, ``bwd_*`` (n_y, k) the reverse.
    """
    x, y = normalize(x), normalize(y)
    fwd_sim, fwd_idx = knn(x, y, min(k, y.shape[0]), backend)
    bwd_sim, bwd_idx = knn(y, x, min(k, x.shape[0]), backend)
    fwd_mean = fwd_sim.mean(axis=1)
    bwd_mean = bwd_sim.mean(axis=1)
    # cos(x_i, y_j) / ((m(x_i) + m(y_j)) / 2); the cosines are the knn similarities themselves
    fwd_scores = _ratio(fwd_sim, (fwd_mean[:, None] + bwd_mean[fwd_idx]) / 2)
    bwd_scores = _ratio(bwd_sim, (bwd_mean[:, None] + fwd_mean[bwd_idx]) / 2)
    return fwd_idx, fwd_scores, bwd_idx, bwd_scores


def _ratio(sim: np.ndarray, denom: np.ndarray) -> np.ndarray:
    """sim / denom in float64; 0 where the neighbourhood is all-zero (no NaN into the ranking)."""
    sim, denom = sim.astype(np.float64), denom.astype(np.float64)
    return np.divide(sim, denom, out=np.zeros_like(sim), where=denom != 0)


def mine_pairs(x: np.ndarray, y: np.ndarray, k: int = 4, backend: str = "auto",
               ) -> list[tuple[float, int, int]]:
    """Candidate (score, source index, target index) pairs, best first, one-to-one.

    Each source proposes its best-margin target and each target its best-margin source; the
    union is taken in order of decreasing score, skipping a pair whose source or target is
    already used (XTREME's ``retrieval='max'``).
    """
    fwd_idx, fwd_scores, bwd_idx, bwd_scores = margin_scores(x, y, k, backend)
    fwd_best = fwd_idx[np.arange(len(fwd_idx)), fwd_scores.argmax(axis=1)]
    bwd_best = bwd_idx[np.arange(len(bwd_idx)), bwd_scores.argmax(axis=1)]
    src = np.concatenate([np.arange(len(fwd_idx)), bwd_best])
    trg = np.concatenate([fwd_best, np.arange(len(bwd_idx))])
    scores = np.concatenate([fwd_scores.max(axis=1), bwd_scores.max(axis=1)])
    seen_src: set[int] = set()
    seen_trg: set[int] = set()
    out: list[tuple[float, int, int]] = []
    for i in np.argsort(-scores, kind="stable"):
        s, t = int(src[i]), int(trg[i])
        if s not in seen_src and t not in seen_trg:
            seen_src.add(s)
            seen_trg.add(t)
            out.append((float(scores[i]), s, t))
    return out


def best_threshold(candidates: Sequence[tuple[float, Any, Any]], gold: set[tuple[Any, Any]]) -> float:
    """The score threshold that maximises F1 of ``score >= threshold`` candidates against ``gold``.

    Candidates are taken best first; the threshold sits halfway between the last kept and the
    first dropped score, or at the last score when all are kept (where XTREME's ``bucc_optimize``
    fails with an IndexError). As there, F1 is computed as 2PR/(P+R) in floating point and only a
    strictly larger value moves the threshold, so exact ties break on the same rounding; and with
    no correct candidate the threshold stays at 0.
    """
    items = sorted(candidates, key=lambda c: -c[0])
    best_f1, threshold, correct = 0.0, 0.0, 0
    for n, (score, s, t) in enumerate(items, start=1):
        correct += (s, t) in gold
        if correct == 0:
            continue
        precision, recall = correct / n, correct / len(gold)
        f1 = 2 * precision * recall / (precision + recall)
        if f1 > best_f1:
            best_f1 = f1
            threshold = (score + items[n][0]) / 2 if n < len(items) else score
    return threshold


def mining_stats(candidates: Sequence[tuple[float, Any, Any]], gold: set[tuple[Any, Any]], threshold: float,
                 sources: Sequence[Any]) -> np.ndarray:
    """Per-source ``(correct pairs, predicted pairs, gold pairs)`` rows of the pairs kept at ``threshold``.

    Summed, they give BUCC's F1 = 2 * correct / (predicted + gold) (metric ``f1``).
    """
    row_of = {s: i for i, s in enumerate(sources)}
    rows = np.zeros((len(sources), 3), dtype=np.float64)
    for score, s, t in candidates:
        if score >= threshold:
            rows[row_of[s], 1] += 1
            rows[row_of[s], 0] += (s, t) in gold
    for s, _ in gold:
        rows[row_of[s], 2] += 1
    return rows


@dataclass
class RetrievalResult:
    """Per-metric per-example rows (see :mod:`xstilts.metrics.stats`) and what else is worth keeping.

    ``predictions``: what a submission in XTREME's layout holds for this language, where the task
    gives it (Tatoeba: the retrieved sentence index per English sentence).
    """

    stats: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    predictions: list[Any] | None = None


class RetrievalTask(Task):
    """A task scored on embeddings alone: no training split, no head, no model selection.

    Options (``[target.task_options.<task>]``): ``layer`` (``"xtreme"``, ``"last"`` or a
    ``hidden_states`` index), ``pool`` (``mean``/``cls``), ``prefix`` (text put before every
    sentence, e.g. ``"query: "`` for e5 models; default none: on XNLI premises it did not help
    the default model and hurt at the XTREME layer, see benchmarks/RESULTS.md, and phase-2
    checkpoints are fine-tuned without it), ``batch_size``, ``backend`` (``auto``/``faiss``/
    ``numpy``), plus the task's own :attr:`options_read`.
    """

    head: ClassVar[str] = "retrieval"  # type: ignore[assignment]
    trainable: ClassVar[bool] = False
    options_read: ClassVar[tuple[str, ...]] = ("dir",)

    def embedding_options(self) -> dict[str, Any]:
        """The options that control embedding and search, with their defaults; unknown keys are errors."""
        unknown = sorted(set(self.options) - set(self.known_options()))
        if unknown:
            raise ConfigError(f"unknown {self.name} option(s) {', '.join(unknown)}; known: "
                              f"{', '.join(self.known_options())}")
        opts = {"layer": "xtreme", "pool": "mean", "prefix": "", "batch_size": 64, "backend": "auto"}
        opts.update({k: v for k, v in self.options.items() if k in EMBEDDING_OPTIONS})
        if not isinstance(opts["prefix"], str):
            raise ConfigError(f"{self.name} option 'prefix' must be a string")
        opts["batch_size"] = int(opts["batch_size"])
        return opts

    def evaluate_embeddings(self, embed: Embedder, language: str, limit: int | None = None,
                            ) -> RetrievalResult:
        """Embed one language's evaluation data with ``embed`` and score it."""
        raise NotImplementedError
