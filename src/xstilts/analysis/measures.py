"""What "robust cross-lingual transfer" is measured by: one definition of every measure.

Every measure is a statistic of **one run** (one seed's model) computed from its scores in every
evaluation language; an arm's value is the mean over its seeds, and an effect is the intermediate
arm's value minus the baseline arm's. Because each effect is the difference of the *same*
statistic of two arms, it has mean zero when intermediate training does nothing, whatever the
statistic's shape (the relative measure it replaces divided gains and losses by different
amounts and was biased under no effect).

Transfer is separated from the task: English (the source language, reported on the half of its
dev set that did *not* choose the checkpoint) is its own line, and the transfer measures describe
the other languages *relative to English*:

``transfer_ratio`` (primary, percent)
    ``100 · (mean zero-shot score − chance) / (English score − chance)``: the share of English's
    above-chance performance that survives zero-shot transfer. It is free of the metric's unit and
    chance level, so entity F1 and 3-way accuracy sit on one scale, and it does not move when
    intermediate training changes English and every other language in proportion. Its effect is in
    percentage points (pp). Undefined (NaN) for a run whose English score is not above chance.
``worst_ratio`` (percent)
    the same ratio for the worst zero-shot language: how much of English the weakest language keeps.
``ratio_spread`` (pp)
    the standard deviation of the per-language ratios across zero-shot languages: how unevenly
    transfer reaches the languages (lower is more robust).
``transfer_gap`` (points)
    English minus the mean zero-shot score, as XTREME reports it (in the target's metric).
``mean_zero_shot`` (points) and ``english`` (points)
    the plain averages: how good zero-shot is, and the in-language effect, reported separately.

Seed spread (the std over seeds of an arm's zero-shot mean) is descriptive: with 2–5 seeds an
interval for a variance is not informative, so it carries none.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class Measure:
    key: str
    label: str
    unit: str  # of the measure itself: "%", "points"; effects of "%" measures are in "pp"
    better: str | None  # "higher" | "lower" | None (not a robustness direction)
    fn: Callable[[Array, float], Array]  # (runs, languages[, boot]) with source at 0, chance -> (runs[, boot])
    primary: bool = False
    robustness: bool = True  # False: reported, but not a measure of *transfer* robustness


def _quiet(fn: Callable[..., Array]) -> Callable[..., Array]:
    def wrapped(*args: object) -> Array:
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(*args)

    return wrapped


def _above(x: Array, chance: float) -> Array:
    """English's room above chance; NaN where it has none (the ratios are undefined there)."""
    room = x[:, 0] - chance
    return np.where(room > 0, room, np.nan)


@_quiet
def english(x: Array, chance: float) -> Array:
    return x[:, 0]


@_quiet
def mean_zero_shot(x: Array, chance: float) -> Array:
    return np.nanmean(x[:, 1:], axis=1)


@_quiet
def transfer_gap(x: Array, chance: float) -> Array:
    return x[:, 0] - np.nanmean(x[:, 1:], axis=1)


@_quiet
def transfer_ratio(x: Array, chance: float) -> Array:
    return 100.0 * (np.nanmean(x[:, 1:], axis=1) - chance) / _above(x, chance)


@_quiet
def worst_ratio(x: Array, chance: float) -> Array:
    if x.shape[1] < 2:  # English only: no zero-shot language, no worst one (nanmin of nothing raises)
        return np.full(x.shape[0], np.nan)
    return 100.0 * (np.nanmin(x[:, 1:], axis=1) - chance) / _above(x, chance)


@_quiet
def ratio_spread(x: Array, chance: float) -> Array:
    ratios = 100.0 * (x[:, 1:] - chance) / _above(x, chance)[:, None]
    return np.nanstd(ratios, axis=1, ddof=1)


MEASURES: tuple[Measure, ...] = (
    Measure("transfer_ratio", "transfer ratio: zero-shot mean relative to English, above chance", "%", "higher",
            transfer_ratio, primary=True),
    Measure("worst_ratio", "worst zero-shot language relative to English, above chance", "%", "higher", worst_ratio),
    Measure("ratio_spread", "spread of the per-language transfer ratios (std)", "pp", "lower", ratio_spread),
    Measure("transfer_gap", "transfer gap: English minus the zero-shot mean", "points", "lower", transfer_gap),
    Measure("mean_zero_shot", "mean zero-shot score", "points", "higher", mean_zero_shot, robustness=False),
    Measure("english", "English score (report half of its dev set)", "points", "higher", english, robustness=False),
)
BY_KEY = {m.key: m for m in MEASURES}
PRIMARY = next(m for m in MEASURES if m.primary)


def effect_unit(measure: Measure) -> str:
    """Unit of a difference of the measure: percentages differ by percentage points."""
    return "pp" if measure.unit == "%" else measure.unit
