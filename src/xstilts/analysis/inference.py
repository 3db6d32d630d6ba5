"""How sure we are about a difference between two arms: seeds and test items, both counted.

The model behind every interval. A run's score on a test set is

    truth + (training-seed effect) + (what this test set's items do to every model)
          + (what they do to this particular model)

so the mean over ``n`` seeds of an arm varies for two reasons: training randomness, which only
more seeds average away, and the finite test set, part of which (the item effect shared by every
model) no number of seeds removes. An interval must count both, and with 2–5 seeds it must pay for
estimating the seed variance from so few runs.

The estimator (per statistic T, one value per run; ``I`` = intermediate arm, ``B`` = baseline):

* **seeds**: the pooled sample variance of T over each arm's runs, ``V_seed = s²(1/n_I + 1/n_B)``
  with ``n_I + n_B − 2`` degrees of freedom. It also contains each model's own item noise, because
  that differs from seed to seed.
* **items**: a bootstrap over test items, with one draw of item indices shared by every run (and by
  every language of a parallel test set), gives ``Var_b(Δ*)``. Part of it is the model-specific
  item noise already inside ``V_seed``; it is measured from each run's own bootstrap variance and
  removed (``F`` below), leaving the *common* item component ``V_item`` that seeds cannot see.
* **interval**: ``Δ ± t(df) · sqrt(V_seed + V_item)`` with Satterthwaite's degrees of freedom
  (``V_item`` counts as known), and the two-sided p-value from the same ``t`` and ``df``: ``p < α``
  exactly when the ``1 − α`` interval excludes zero.

The seed variance is pooled over both arms (one training procedure); with a single seed in *both*
arms it cannot be estimated: the interval then reflects test items only, ``df`` is 0, and no
p-value or verdict is given. Without per-example statistics the
item component is unknown and taken as 0 (said in ``method``). ``docs/statistics.md`` reports the
coverage of these intervals in simulated experiments with known effects.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

__all__ = ["Estimate", "arm_difference", "combine", "paired_difference", "t_critical"]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its standard error, degrees of freedom, interval and p-value."""

    value: float
    se: float
    df: float  # 0 when the seed variance could not be estimated (no p-value then)
    lo: float
    hi: float
    p: float
    method: str  # "seeds+items" | "seeds" | "items" | "none"
    v_seed: float = float("nan")  # seed part of se² (per-seed noise, incl. model-specific item noise)
    v_item: float = float("nan")  # common test-item part of se²
    s2_pooled: float = float("nan")  # pooled per-run variance (for power and seeds-needed)
    n_i: int = 0
    n_b: int = 0

    @property
    def decided(self) -> bool:
        """True when the interval excludes zero (and a p-value exists)."""
        return bool(np.isfinite(self.p) and (self.lo > 0 or self.hi < 0))


def t_critical(df: float, level: float) -> float:
    """Two-sided critical value of Student's t (normal for infinite df)."""
    q = 0.5 + level / 2.0
    return float(sps.norm.ppf(q)) if not np.isfinite(df) else float(sps.t.ppf(q, df))


def _interval(value: float, v_seed: float, v_item: float, df_seed: float, level: float,
              method: str, satterthwaite: bool = True, **extra: float) -> Estimate:
    """Assemble the t interval and p-value from the two variance parts (``satterthwaite=False``: df = df_seed)."""
    v_item = max(v_item, 0.0) if np.isfinite(v_item) else 0.0
    have_seed = np.isfinite(v_seed) and df_seed >= 1
    var = (v_seed if have_seed else 0.0) + v_item
    if not np.isfinite(value) or (not have_seed and v_item <= 0):
        return Estimate(value, float("nan"), 0.0, float("nan"), float("nan"), float("nan"), "none", v_seed, v_item,
                        **extra)
    se = math.sqrt(var)
    if have_seed and not satterthwaite:
        df = float(df_seed)
    elif have_seed:  # Satterthwaite: the item part is estimated from thousands of replicates (df = inf)
        df = df_seed * (var / v_seed) ** 2 if v_seed > 0 else math.inf
    else:
        df = 0.0
    crit = t_critical(df if have_seed else math.inf, level)
    lo, hi = value - crit * se, value + crit * se
    if not have_seed:  # items only: an interval for the test set, but training variance is unknown
        return Estimate(value, se, 0.0, lo, hi, float("nan"), "items", v_seed, v_item, **extra)
    if se == 0:
        p = 1.0 if value == 0 else 0.0
    else:
        p = float(2.0 * (sps.t.sf(abs(value) / se, df) if np.isfinite(df) else sps.norm.sf(abs(value) / se)))
    return Estimate(value, se, df, lo, hi, p, method, v_seed, v_item, **extra)


def _finite_var(x: np.ndarray, axis: int = -1) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanvar(x, axis=axis, ddof=1)


def _fresh_item_variance(reps: np.ndarray) -> float:
    """``F``: the item variance of one run's score that is *not* shared with the arm's other runs.

    ``mean_r Var_b(T_r) = C + F`` and ``Var_b(mean_r T_r) = C + F / n``, so
    ``F = n / (n − 1) · (mean_r Var_b(T_r) − Var_b(mean_r T_r))`` (clipped at 0).
    """
    n = reps.shape[0]
    if n < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_run = float(np.nanmean(_finite_var(reps, axis=1)))
        of_mean = float(_finite_var(np.nanmean(reps, axis=0), axis=0))
    return max(0.0, n / (n - 1) * (per_run - of_mean))


def arm_difference(t_i: np.ndarray, t_b: np.ndarray, reps_i: np.ndarray | None = None,
                   reps_b: np.ndarray | None = None, level: float = 0.95) -> Estimate:
    """``mean(t_i) − mean(t_b)`` with the interval of the module doc.

    ``t_*``: the statistic per run (one per seed). ``reps_*``: ``(runs, n_boot)`` the same statistic
    under shared item resamples, or None when no per-example statistics exist.
    """
    t_i, t_b = np.asarray(t_i, dtype=np.float64), np.asarray(t_b, dtype=np.float64)
    n_i, n_b = len(t_i), len(t_b)
    if n_i == 0 or n_b == 0 or not (np.all(np.isfinite(t_i)) and np.all(np.isfinite(t_b))):
        return Estimate(float("nan"), float("nan"), 0.0, float("nan"), float("nan"), float("nan"), "none",
                        n_i=n_i, n_b=n_b)
    value = float(t_i.mean() - t_b.mean())
    # Pooled over both arms (one training procedure, one seed variance); an arm with a single seed
    # adds nothing to it, and with a single seed in both arms there is nothing to pool.
    df_seed = n_i + n_b - 2
    ss = float(((t_i - t_i.mean()) ** 2).sum() + ((t_b - t_b.mean()) ** 2).sum())
    s2 = ss / df_seed if df_seed >= 1 else float("nan")
    v_seed = s2 * (1.0 / n_i + 1.0 / n_b) if np.isfinite(s2) else float("nan")
    v_item = float("nan")
    if reps_i is not None and reps_b is not None:
        reps_i, reps_b = np.asarray(reps_i, np.float64), np.asarray(reps_b, np.float64)
        # a replicate whose ratio is undefined in a run (English at chance in that resample) averages
        # the arm's other runs; one undefined in every run is NaN and dropped below (~1 in 1,000 in
        # the study's XNLI arms)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            diff = np.nanmean(reps_i, axis=0) - np.nanmean(reps_b, axis=0)
        ok = np.isfinite(diff)
        if ok.mean() >= 0.5 and ok.sum() > 2:
            total = float(np.var(diff[ok], ddof=1))
            f_i, f_b = _fresh_item_variance(reps_i[:, ok]), _fresh_item_variance(reps_b[:, ok])
            f_i, f_b = (f_i if np.isfinite(f_i) else f_b), (f_b if np.isfinite(f_b) else f_i)
            if np.isfinite(s2) and np.isfinite(f_i):
                v_item = total - f_i / n_i - f_b / n_b
            else:  # nothing to separate with: count it all (conservative)
                v_item = total
    method = "seeds+items" if np.isfinite(v_item) else "seeds"
    return _interval(value, v_seed, v_item, df_seed, level, method, s2_pooled=s2, n_i=n_i, n_b=n_b)


def combine(a: Estimate, b: Estimate, sign: float = -1.0, level: float = 0.95) -> Estimate:
    """``a + sign·b`` for two *independent* estimates (e.g. NER and NLI when seeds do not match)."""
    value = a.value + sign * b.value
    if not (np.isfinite(a.se) and np.isfinite(b.se)) or a.df == 0 or b.df == 0:
        return Estimate(value, float("nan"), 0.0, float("nan"), float("nan"), float("nan"), "none")
    v_seed = (a.v_seed if np.isfinite(a.v_seed) else 0.0) + (b.v_seed if np.isfinite(b.v_seed) else 0.0)
    v_item = max(a.v_item, 0.0) if np.isfinite(a.v_item) else 0.0
    v_item += max(b.v_item, 0.0) if np.isfinite(b.v_item) else 0.0
    parts = [(a.v_seed, a.n_i + a.n_b - 2), (b.v_seed, b.n_i + b.n_b - 2)]
    denom = sum(v**2 / d for v, d in parts if np.isfinite(v) and v > 0 and d >= 1)
    df_seed = v_seed**2 / denom if denom > 0 else math.inf
    method = a.method if a.method == b.method else "mixed"
    return _interval(value, v_seed, v_item, df_seed, level, method)


def paired_difference(d: np.ndarray, reps: np.ndarray | None = None, level: float = 0.95) -> Estimate:
    """``mean(d)`` of per-run differences between two treatments of the *same* runs (e.g. two
    checkpoint-selection strategies), with the interval of the module doc for one arm.

    The seed part is ``s²_d / n`` with ``n − 1`` degrees of freedom; ``reps`` ``(runs, n_boot)``
    (the difference under shared item resamples) gives the common item part, less the per-run item
    noise already in ``s²_d``, exactly as :func:`arm_difference` does for each arm.

    The degrees of freedom stay ``n − 1`` (no Satterthwaite increase). Two models of one run share
    its seed shift, so ``s²_d`` holds only the runs' item noise and is small, and the common item
    part is estimated from a cross-run covariance that is often pure noise of the same size: with
    2 seeds Satterthwaite's ``df`` then rises above 1 exactly when ``s²_d`` came out too small,
    and 7–8 % of 95 % intervals excluded a true 0 in simulation
    (:mod:`.strategy_calibration`, docs/statistics.md). With ``n − 1`` the seed part keeps its
    exact t reference and the item part only widens the interval.
    """
    d = np.asarray(d, dtype=np.float64)
    n = len(d)
    if n == 0 or not np.all(np.isfinite(d)):
        return Estimate(float("nan"), float("nan"), 0.0, float("nan"), float("nan"), float("nan"), "none", n_i=n)
    value = float(d.mean())
    s2 = float(d.var(ddof=1)) if n >= 2 else float("nan")
    v_seed = s2 / n if np.isfinite(s2) else float("nan")
    v_item = float("nan")
    if reps is not None:
        reps = np.asarray(reps, np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(reps, axis=0)
        ok = np.isfinite(mean)
        if ok.mean() >= 0.5 and ok.sum() > 2:
            total = float(np.var(mean[ok], ddof=1))
            fresh = _fresh_item_variance(reps[:, ok])
            v_item = total - fresh / n if np.isfinite(s2) and np.isfinite(fresh) else total
    method = "seeds+items" if np.isfinite(v_item) else "seeds"
    return _interval(value, v_seed, v_item, n - 1, level, method, satterthwaite=False, s2_pooled=s2, n_i=n)
