"""Fixed, disjoint halves of every evaluation set, shared by every run that scores it.

Two uses, two independent bits of one hash of the item's position:

* **Selection half** (English only): the checkpoint of a run is chosen on the English items of
  the selection half, and English is *reported* on the other half, so the English score (and the
  transfer gap built from it) is not the optimistic score that picked the checkpoint.
* **Replication halves** (every language): the analysis repeats its answer on each half alone
  and says whether it holds on both (split-half replication).

Why a hash of the index: the halves must be the same for every run, every seed and every
language of a parallel test set (row i of XNLI's dev-de translates row i of dev-en), must not
depend on how many items a run evaluated (``max_eval_examples`` keeps a prefix), and must not
depend on a library's random-number generator. Item i's halves depend on i alone.

Rows outside a half are *zeroed* rather than removed (``(hits, n_pred, n_gold) = (0, 0, 0)``
contributes nothing to any corpus metric), so per-example arrays stay aligned by item index
across languages and runs.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np

#: Split name of the English selection-half curve a phase-3 run stores (the reported English is
#: under the ordinary evaluation split): written by phases.evaluate, read by analysis.data.
SELECT_SPLIT = "select"

_SELECTION_BIT = 0
_REPLICATION_BIT = 1


@lru_cache(maxsize=64)
def _hashes(n: int) -> np.ndarray:
    return np.array([zlib.crc32(f"xstilts-item-{i}".encode()) for i in range(n)], dtype=np.uint32)


def _bits(n: int, bit: int) -> np.ndarray:
    return ((_hashes(n) >> bit) & 1).astype(bool)


def selection_mask(n: int) -> np.ndarray:
    """True for the items whose English scores choose the checkpoint (about half of ``n``)."""
    return _bits(n, _SELECTION_BIT)


def report_mask(n: int) -> np.ndarray:
    """True for the English items that are reported: the complement of :func:`selection_mask`."""
    return ~selection_mask(n)


def replication_mask(n: int) -> np.ndarray:
    """True for replication half A, False for half B (independent of the selection half)."""
    return _bits(n, _REPLICATION_BIT)


def keep_rows(stats: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-example ``(hits, n_pred, n_gold)`` rows with the rows outside ``mask`` zeroed."""
    out = np.array(stats, dtype=np.float64, copy=True)
    out[~np.asarray(mask, dtype=bool)[: len(out)]] = 0.0
    return out
