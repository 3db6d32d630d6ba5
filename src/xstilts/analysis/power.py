"""What the experiment could have seen: minimal detectable effect and the seeds an effect needs.

An interval that includes zero says "not shown", not "no effect". To read it, the report gives:

* ``mde80``: the smallest true effect this design detects with 80 % power at level ``α``, from the
  estimate's own standard error and degrees of freedom: ``(t(1 − α/2) + t(0.8)) · se``;
* ``seeds_needed``: the seeds per arm at which the *observed* effect would be detected with 80 %
  power, keeping the test sets (the common item variance does not shrink with seeds, so an effect
  below its floor needs more test items instead: ``-1``; more than ``MAX_SEEDS``: ``inf``);
* ``item_share``: the part of the variance that comes from the common test items, i.e. how much
  more test data (rather than more seeds) would help.

Both are planning aids computed from estimated variances; with 2–3 seeds those estimates are
themselves rough, and the report says so.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from xstilts.analysis.inference import Estimate

POWER = 0.8
MAX_SEEDS = 200


def _multiplier(df: float, alpha: float) -> float:
    if not math.isfinite(df):
        return float(sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(POWER))
    return float(sps.t.ppf(1 - alpha / 2, df) + sps.t.ppf(POWER, df))


def mde(e: Estimate, alpha: float = 0.05) -> float:
    """Minimal detectable effect at 80 % power (NaN without a seed-variance estimate)."""
    if not (math.isfinite(e.se) and e.df > 0):
        return float("nan")
    return _multiplier(e.df, alpha) * e.se


def seeds_needed(e: Estimate, alpha: float = 0.05) -> float:
    """Seeds per arm that detect ``|e.value|`` with 80 % power; -1: more seeds alone cannot (the item
    variance's floor is above the effect); inf: more than ``MAX_SEEDS`` would."""
    if not (math.isfinite(e.s2_pooled) and math.isfinite(e.value)) or e.value == 0:
        return float("nan")
    v_item = max(e.v_item, 0.0) if math.isfinite(e.v_item) else 0.0
    target = abs(e.value)
    if _multiplier(math.inf, alpha) * math.sqrt(v_item) >= target:
        return -1.0
    if e.s2_pooled <= 0:
        return 2.0
    n = np.arange(2, MAX_SEEDS + 1, dtype=np.float64)  # every candidate at once: one vectorised ppf call
    v_seed = e.s2_pooled * 2.0 / n
    var = v_seed + v_item
    df = (2 * n - 2) * (var / v_seed) ** 2
    detectable = (sps.t.ppf(1 - alpha / 2, df) + sps.t.ppf(POWER, df)) * np.sqrt(var) <= target
    return float(n[np.argmax(detectable)]) if detectable.any() else math.inf  # seeds could, past MAX_SEEDS


def power_row(e: Estimate, alpha: float = 0.05) -> dict[str, float]:
    var = e.se**2 if math.isfinite(e.se) else float("nan")
    share = (max(e.v_item, 0.0) / var) if (math.isfinite(e.v_item) and var and var > 0) else float("nan")
    return {"item_share": share, "mde80": mde(e, alpha), "seeds_needed": seeds_needed(e, alpha)}
