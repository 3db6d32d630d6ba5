"""Does the analysis tell the truth? Simulated experiments with known effects, run through ``analyze``.

Each scenario describes a study (targets, languages and their baseline scores, test-set sizes,
seeds, seed noise, which test sets are parallel) and the *true* effect of an intermediate task on
every language. :func:`run_scenario` writes many such experiments with
:func:`~xstilts.analysis.synthetic.write_synthetic_experiment` (per-example statistics, English
held out as a real run stores it) and analyses each with the real :func:`~xstilts.analysis.analyze`.
It then counts:

* how often the headline answer claims a direction when NER and NLI are affected alike
  (false-verdict rate; goal ≤ 5 %),
* how often the 95 % intervals of per-language Δ, of the mean zero-shot Δ and of the NER − NLI
  difference of the primary measure contain the true value (coverage; goal 93–97 %),
* how often a true difference is detected in the right direction (power).

The truth of the primary measure is the transfer ratio of the noise-free scores of each arm; the
ratio of expectations differs from the expectation of the ratio by a second-order term (about
0.2 pp at these sizes), negligible next to the intervals' half-widths.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from xstilts.analysis.measures import PRIMARY
from xstilts.analysis.synthetic import SyntheticTarget, expected_scores, write_synthetic_experiment
from xstilts.config import BASELINE

SETTING = "treat"

# Baselines shaped like the quickstart's measured ones (benchmarks/RESULTS.md): PAN-X entity F1 with a
# weak zh, XNLI accuracy a little above chance in every language.
QUICKSTART_NER = {"en": 60.0, "de": 64.0, "es": 58.0, "ru": 41.0, "zh": 15.0, "ar": 40.0, "hi": 51.0, "sw": 64.0}
QUICKSTART_NLI = {"en": 54.0, "de": 51.0, "es": 50.0, "ru": 50.0, "zh": 48.0, "ar": 48.0, "hi": 49.5, "sw": 47.0}
# configs/study.toml before 2026-12-08: 5 languages, small test sets, XNLI barely trained
SMALL_STUDY_NER = {"en": 55.0, "de": 45.0, "ru": 35.0, "sw": 40.0, "zh": 20.0}
SMALL_STUDY_NLI = {"en": 52.0, "de": 45.0, "ru": 44.0, "sw": 40.0, "zh": 43.0}
SIZES = {
    # name: (NER baselines, NLI baselines, NER items, NLI items, seeds)
    "quickstart": (QUICKSTART_NER, QUICKSTART_NLI, 200, 300, (1, 2)),
    # configs/study.toml: the quickstart's languages, test sets and target training, 3 seeds
    "study": (QUICKSTART_NER, QUICKSTART_NLI, 200, 300, (1, 2, 3)),
    "small study": (SMALL_STUDY_NER, SMALL_STUDY_NLI, 128, 100, (1, 2, 3)),
    # what a study needs to answer at these baselines: 1,000 items per language, 5 seeds
    "1000 items, 5 seeds": (QUICKSTART_NER, QUICKSTART_NLI, 1000, 1000, (1, 2, 3, 4, 5)),
}


@dataclass(frozen=True)
class Scenario:
    """One simulated design with known effects (points, per target: one number or per language)."""

    name: str
    size: str
    ner_effect: float | Mapping[str, float] = 0.0
    nli_effect: float | Mapping[str, float] = 0.0
    seed_sd: float = 2.0  # run-level shift shared by a run's languages
    lang_seed_sd: float = 1.5  # per-language training noise
    shared_seed_sd: float = 1.0  # shared by both targets trained from one intermediate model
    description: str = ""
    extra: dict = field(default_factory=dict)

    def targets(self) -> list[SyntheticTarget]:
        ner, nli, n_ner, n_nli, _ = SIZES[self.size]
        return [
            SyntheticTarget("panx", "f1", ner, {SETTING: self.ner_effect}, n_examples=n_ner, seed_sd=self.seed_sd,
                            lang_seed_sd=self.lang_seed_sd),
            SyntheticTarget("xnli", "accuracy", nli, {SETTING: self.nli_effect}, n_examples=n_nli,
                            chance=100.0 / 3.0, parallel=True, seed_sd=self.seed_sd / 2,
                            lang_seed_sd=self.lang_seed_sd / 2),
        ]

    @property
    def seeds(self) -> tuple[int, ...]:
        return SIZES[self.size][4]


def zero_shot_only(size: str, points: float) -> dict[str, float]:
    """An effect on every zero-shot language of the NER baselines and none on English."""
    return {lang: (0.0 if lang == "en" else points) for lang in SIZES[size][0]}


def scenarios() -> list[Scenario]:
    """The scenarios of docs/statistics.md."""
    out = []
    for size in ("quickstart", "study", "small study"):
        out += [
            Scenario("no effect", size, description="nothing changes, on either target"),
            Scenario("same shift on both", size, -4.0, -4.0,
                     description="every language of both targets −4 points"),
            Scenario("NER transfer −3", size, zero_shot_only(size, -3.0),
                     description="NER zero-shot languages −3 points, English and NLI unchanged"),
            Scenario("NER transfer −5", size, zero_shot_only(size, -5.0),
                     description="NER zero-shot languages −5 points, English and NLI unchanged"),
        ]
    big = "1000 items, 5 seeds"
    out += [
        Scenario("no effect", big, description="nothing changes, on either target"),
        Scenario("NER transfer −3", big, zero_shot_only(big, -3.0),
                 description="NER zero-shot languages −3 points, English and NLI unchanged"),
        Scenario("NER transfer −5", big, zero_shot_only(big, -5.0),
                 description="NER zero-shot languages −5 points, English and NLI unchanged"),
    ]
    ner = QUICKSTART_NER
    out += [
        Scenario("per-language effects", "quickstart",
                 {lang: d for lang, d in zip(ner, (0.0, -6.0, 2.0, -10.0, 4.0, 0.0, -3.0, 5.0), strict=True)},
                 {lang: d for lang, d in zip(QUICKSTART_NLI, (3.0, 4.0, 2.0, 5.0, 6.0, 4.0, 3.0, 5.0), strict=True)},
                 description="mixed signs per language on NER, gains on NLI"),
        Scenario("large effect, more seed noise", "quickstart", zero_shot_only("quickstart", -10.0), 4.0,
                 seed_sd=4.0, lang_seed_sd=3.0, description="NER transfer −10, NLI +4 everywhere, seed sd doubled"),
    ]
    return out


def _truth(targets: list[SyntheticTarget]) -> dict:
    """True per-language Δ, mean zero-shot Δ and primary-measure effect of each target."""
    out: dict = {}
    for t in targets:
        base, treat = expected_scores(t, BASELINE), expected_scores(t, SETTING)
        langs = list(base)
        x = np.array([[base[lang] for lang in langs], [treat[lang] for lang in langs]])
        primary = PRIMARY.fn(x, t.chance)
        zs = [lang for lang in langs if lang != "en"]
        out[t.name] = {
            "languages": {lang: treat[lang] - base[lang] for lang in langs},
            "mean": float(np.mean([treat[lang] - base[lang] for lang in zs])),
            "primary": float(primary[1] - primary[0]),
        }
    return out


def run_scenario(scenario: Scenario, n: int, n_boot: int = 200, seed: int = 0,
                 workdir: str | Path | None = None) -> pd.DataFrame:
    """``n`` simulated experiments of one scenario; one row per experiment with what was covered."""
    from xstilts.analysis import analyze

    targets = scenario.targets()
    truth = _truth(targets)
    true_diff = truth["panx"]["primary"] - truth["xnli"]["primary"]
    root = Path(tempfile.mkdtemp(prefix="xstilts-cal-", dir=workdir))
    rows = []
    try:
        for k in range(n):
            expdir = write_synthetic_experiment(
                root / f"e{k}", targets, seeds=scenario.seeds, with_curves=False, holdout_english=True,
                shared_seed_sd=scenario.shared_seed_sd, rng_seed=seed * 100_003 + k)
            a = analyze(expdir, n_boot=n_boot, seed=k, with_selection=False)
            shutil.rmtree(expdir, ignore_errors=True)
            row: dict = {"scenario": scenario.name, "size": scenario.size, "experiment": k, "true_diff": true_diff}
            prim = a.comparison[a.comparison["primary"]].iloc[0]
            row |= {"diff": prim["diff"], "diff_lo": prim["diff_lo"], "diff_hi": prim["diff_hi"],
                    "favours": prim["favours"], "diff_covered": prim["diff_lo"] <= true_diff <= prim["diff_hi"]}
            eff = a.effects
            covered = [(r["ci_lo"] <= truth[r["target"]]["languages"][r["language"]] <= r["ci_hi"])
                       for _, r in eff.iterrows()]
            row["lang_covered"], row["lang_total"] = int(sum(covered)), len(covered)
            means = a.measures[a.measures["measure"] == "mean_zero_shot"]
            row["mean_covered"] = int(sum(r["ci_lo"] <= truth[r["target"]]["mean"] <= r["ci_hi"]
                                          for _, r in means.iterrows()))
            row["mean_total"] = len(means)
            rows.append(row)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return pd.DataFrame(rows)


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (scenario, size): false verdicts or power, and the three coverages."""
    out = []
    for (name, size), g in frame.groupby(["scenario", "size"], sort=False):
        true_diff = float(g["true_diff"].iloc[0])
        claims = g["favours"].isin(["NER", "NLI"])
        right = (g["favours"] == ("NER" if true_diff > 0 else "NLI")) if abs(true_diff) > 1e-9 else claims & False
        defined = g["diff_lo"].notna()  # undefined: English not above chance in some run (no verdict)
        out.append({
            "scenario": name, "size": size, "experiments": len(g), "true NER − NLI (pp)": round(true_diff, 2),
            "verdicts claimed": float(claims.mean()),
            "right direction": float(right.mean()),
            "ratio undefined": float(1 - defined.mean()),
            "coverage NER − NLI": float(g.loc[defined, "diff_covered"].astype(bool).mean()),
            "coverage per-language Δ": float(g["lang_covered"].sum() / g["lang_total"].sum()),
            "coverage mean Δ": float(g["mean_covered"].sum() / g["mean_total"].sum()),
        })
    return pd.DataFrame(out)
