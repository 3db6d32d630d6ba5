"""Are the selection-strategy intervals honest? Simulated stores with known strategy effects.

:mod:`.strategies` prints, per (target, setting, language), an interval of "strategy − English dev"
and the NER-vs-NLI answer recomputed under each strategy. This module writes experiments whose
checkpoints and averaged model have expected scores chosen in advance
(:func:`~xstilts.analysis.synthetic.write_strategy_experiment`: per-step and averaged per-example
rows, English held out and its selection half choosing the kept step, seed shifts shared by every
checkpoint of a run), analyses each with the real :func:`~.strategies.strategy_tables` (the data
and selection curves loaded as ``analyze`` loads them) and counts, per strategy:

* **false verdicts**: ``vs_english`` intervals that exclude 0 where the truth is 0 (goal ≤ 5 %);
* **coverage** of the ``vs_english`` intervals where the truth is known (goal 93–97 %);
* **wrong direction**: intervals on the wrong side of 0 where only the truth's sign is known;
* the NER-vs-NLI answer's ``favours`` ≠ neither (false: no scenario has an intermediate effect),
  and how often each strategy is marked ``most_stable`` (no scenario makes one strategy's answer
  more stable than another's, so a calibrated ranking would not prefer any).

Scenarios:

``no difference``
    every checkpoint and the average have the language's baseline level: every strategy's truth
    minus English dev is exactly 0 (k-shot, the oracle and English dev each choose on items they
    do not score, and a choice among equal levels changes nothing in expectation).
``known difference``
    English peaks at the middle step (the others ``margin`` = 25 points lower, so English dev keeps
    it; the share of runs where it did is reported); each zero-shot language rises by ``cost`` = 2
    points per step, so English dev's step is 2 below the language's best; the average is
    ``gain`` = 3 above the best step on zero-shot languages and at English's peak on English.
    Truths: average − English dev = ``gain + cost`` = 5 on zero-shot languages and 0 on English.
    The oracle's and k-shot's estimand is the expected score of the step they choose, a mixture
    over steps weighted by how often noise picks each: not computable in closed form, so only its
    sign is checked (between 0 and ``cost`` on zero-shot languages; for the oracle at most 0 on
    English, whose best step English dev already keeps). k-shot on English *is* English dev (the
    source keeps its English-dev step) and is left out of every count.

Intermediate training changes nothing in either scenario, so the NER-vs-NLI answer's truth is 0
under every strategy.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xstilts.analysis.calibration import SETTING, SIZES, Scenario
from xstilts.analysis.data import load, load_selection_curves
from xstilts.analysis.measures import PRIMARY
from xstilts.analysis.strategies import ALL_STRATEGIES, DEFAULT_K_SHOT, strategy_tables
from xstilts.analysis.synthetic import StepProfile, write_strategy_experiment
from xstilts.config import BASELINE

STEPS = (100, 200, 300)
ENGLISH_STEP = 1  # index of the step English dev keeps in "known difference"


@dataclass(frozen=True)
class StrategyScenario:
    """One simulated design; ``cost``/``gain``/``margin`` as in the module doc (0: no difference)."""

    name: str
    size: str
    cost: float = 0.0
    gain: float = 0.0
    margin: float = 0.0
    seed_sd: float = 2.0
    lang_seed_sd: float = 1.5
    shared_seed_sd: float = 1.0

    @property
    def seeds(self) -> tuple[int, ...]:
        return SIZES[self.size][4]

    def profiles(self, source: str = "en") -> list[StepProfile]:
        # the main calibration's two targets at this size (their intermediate effects are 0 here)
        targets = Scenario(self.name, self.size, seed_sd=self.seed_sd, lang_seed_sd=self.lang_seed_sd).targets()
        if not (self.cost or self.gain or self.margin):
            return [StepProfile(t) for t in targets]
        out = []
        for t in targets:
            steps, average = {}, {}
            for lang, base in t.baseline.items():
                if lang == source:
                    steps[lang] = [base - (0.0 if j == ENGLISH_STEP else self.margin) for j in range(len(STEPS))]
                    average[lang] = base
                else:  # rises by `cost` per step: English dev's (middle) step is `cost` below the last
                    steps[lang] = [base - self.cost * (len(STEPS) - 1 - j) for j in range(len(STEPS))]
                    average[lang] = base + self.gain
            out.append(StepProfile(t, steps, average))
        return out

    def truth(self, label: str, language: str, source: str = "en") -> tuple[float | None, int]:
        """(exact truth of ``label`` − English dev or None, its sign where only that is known)."""
        if label == "english":
            return None, 0  # the reference itself
        if label.startswith("k-shot") and language == source:
            return None, 0  # English keeps its English-dev step under k-shot: the same model, no interval
        if not (self.cost or self.gain or self.margin):
            return 0.0, 0
        if label.startswith("average"):
            return (0.0 if language == source else self.gain + self.cost), 0
        if label == "oracle":
            return None, (-1 if language == source else 1)
        return None, 1


def scenarios() -> list[StrategyScenario]:
    """The scenarios of docs/statistics.md ("Which checkpoint")."""
    out = []
    for size in ("quickstart", "study", "small study"):
        out += [StrategyScenario("no difference", size),
                StrategyScenario("known difference", size, cost=2.0, gain=3.0, margin=25.0)]
    return out


def _interval_counts(per_lang: pd.DataFrame, sc: StrategyScenario, label: str) -> dict:
    rows = per_lang[per_lang["strategy"] == label]
    c = dict.fromkeys(("null", "false", "known", "covered", "nonzero", "right", "signed", "wrong"), 0)
    for _, r in rows.iterrows():
        lo, hi = r["vs_english_lo"], r["vs_english_hi"]
        if not (np.isfinite(lo) and np.isfinite(hi)):
            continue
        truth, sign = sc.truth(label, r["language"])
        if truth is not None:
            c["known"] += 1
            c["covered"] += int(lo <= truth <= hi)
            if truth == 0:
                c["null"] += 1
                c["false"] += int(lo > 0 or hi < 0)
            else:
                c["nonzero"] += 1
                c["right"] += int(lo > 0 if truth > 0 else hi < 0)
        elif sign:
            c["signed"] += 1
            c["wrong"] += int(hi < 0 if sign > 0 else lo > 0)
    return c


def run_strategy_scenario(sc: StrategyScenario, n: int, n_boot: int = 200, seed: int = 0,
                          ks: Sequence[int] = DEFAULT_K_SHOT, workdir: str | Path | None = None) -> pd.DataFrame:
    """``n`` simulated experiments of one scenario; one row per (experiment, strategy) with its counts."""
    root = Path(tempfile.mkdtemp(prefix="xstilts-stratcal-", dir=workdir))
    rows = []
    try:
        for k in range(n):
            expdir = write_strategy_experiment(root / f"e{k}", sc.profiles(), seeds=sc.seeds, steps=STEPS,
                                               settings=(BASELINE, SETTING), shared_seed_sd=sc.shared_seed_sd,
                                               rng_seed=seed * 100_003 + k)
            data = load(expdir)
            curves = load_selection_curves(expdir, data)
            per_lang, _, answer = strategy_tables(expdir, data, curves, ks, ALL_STRATEGIES, n_boot, seed=k)
            shutil.rmtree(expdir, ignore_errors=True)
            eng = per_lang[(per_lang["strategy"] == "english") & (per_lang["language"] == data.source)]
            kept = [s for steps in eng["steps"] for s in steps.split("/")]
            english_ok = (float(np.mean([s == str(STEPS[ENGLISH_STEP]) for s in kept])) if kept and sc.margin
                          else float("nan"))
            for label in dict.fromkeys(per_lang["strategy"]):  # English dev: only its answer (no interval)
                row = {"scenario": sc.name, "size": sc.size, "experiment": k, "strategy": label,
                       "english_kept_peak": english_ok, **_interval_counts(per_lang, sc, label)}
                for measure, tag in ((PRIMARY.key, "primary"), ("transfer_gap", "gap")):
                    ans = answer[(answer["strategy"] == label) & (answer["measure"] == measure)]
                    row[f"{tag}_favours"] = ans["favours"].iloc[0] if len(ans) else "n/a"
                    row[f"{tag}_covered"] = bool(len(ans) and ans["diff_lo"].iloc[0] <= 0 <= ans["diff_hi"].iloc[0])
                    row[f"{tag}_defined"] = bool(len(ans) and np.isfinite(ans["diff_lo"].iloc[0]))
                    row[f"{tag}_most_stable"] = bool(len(ans) and ans["most_stable"].iloc[0])
                rows.append(row)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return pd.DataFrame(rows)


def _share(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def summarise_strategies(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (scenario, size, strategy): the interval and answer rates of the module doc."""
    out = []
    for (name, size, label), g in frame.groupby(["scenario", "size", "strategy"], sort=False):
        s = g.sum(numeric_only=True)
        if not s["known"] + s["signed"] and not g["primary_defined"].any():
            continue  # a k-shot-K with K above half of every zero-shot language's items: nothing to judge
        claims = {tag: g.loc[g[f"{tag}_defined"], f"{tag}_favours"].isin(["NER", "NLI"]) for tag in ("primary", "gap")}
        out.append({
            "scenario": name, "size": size, "strategy": label, "experiments": len(g),
            "false verdicts vs English": _share(s["false"], s["null"]),
            "coverage vs English": _share(s["covered"], s["known"]),
            "power vs English": _share(s["right"], s["nonzero"]),
            "wrong direction": _share(s["wrong"], s["signed"]),
            "NER-vs-NLI verdicts (ratio)": float(claims["primary"].mean()) if len(claims["primary"]) else np.nan,
            "NER-vs-NLI verdicts (gap)": float(claims["gap"].mean()) if len(claims["gap"]) else np.nan,
            "coverage NER − NLI (ratio)": float(g.loc[g["primary_defined"], "primary_covered"].mean()),
            "marked most stable (ratio)": float(g["primary_most_stable"].mean()),
            "intervals": int(s["known"] + s["signed"]),
            "English dev kept its peak": float(g["english_kept_peak"].mean()),
        })
    return pd.DataFrame(out)
