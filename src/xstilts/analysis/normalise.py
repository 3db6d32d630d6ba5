"""Put effects on targets with different metrics and baselines on one scale.

Why: +2 entity-F1 points on a language where the baseline NER model scores 40 is not the same
thing as +2 accuracy points where the NLI baseline scores 75 with a 33.3 chance level. We
therefore express a change relative to the room it had to move in:

* a gain ``delta >= 0`` as a share of the headroom to the ceiling: ``delta / (100 - base)``;
* a loss ``delta < 0`` as a share of the baseline's margin above chance:
  ``delta / (base - chance)``.

Both lie in ``[-1, 1]`` when the scores are in ``[chance, 100]``: +1 means "closed the whole gap
to perfect", -1 means "fell all the way to chance". Where the relevant room is zero or negative
(a baseline at the ceiling, or at or below chance) the share is undefined and returned as NaN,
except that no change is always 0.
"""

from __future__ import annotations

import numpy as np

from xstilts.analysis.data import CEILING


def normalised_delta(
    delta: float | np.ndarray, base: float | np.ndarray, chance: float, ceiling: float = CEILING
) -> np.ndarray:
    """Relative change (see module doc); broadcasts over arrays."""
    delta = np.asarray(delta, dtype=np.float64)
    base = np.asarray(base, dtype=np.float64)
    room = np.where(delta >= 0, ceiling - base, base - chance)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(room > 0, delta / np.where(room > 0, room, 1.0), np.nan)
    return np.where(delta == 0, 0.0, out)
