"""Reader-facing views of the analysis tables, shared by the HTML and the Markdown report.

Why a view layer: the CSVs keep every column at full precision for re-analysis, while a reader
needs a few columns, numbers with a CI next to them, and "–" where something could not be
computed. Building the views once keeps the two report formats saying exactly the same thing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from xstilts.analysis import Analysis
from xstilts.analysis.measures import BY_KEY
from xstilts.analysis.power import MAX_SEEDS
from xstilts.analysis.strategies import UNRANKED
from xstilts.analysis.summary import fmt, level_percent, replication_status

DASH = "–"


@dataclass
class TableView:
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


def _finite(x: object) -> bool:
    try:
        return math.isfinite(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def with_ci(
    value: object,
    lo: object,
    hi: object,
    scale: float = 1.0,
    spec: str = ".1f",
    unit: str = "",
    signed: bool = True,
) -> str:
    """``+1.2 [+0.4, +2.0]``; the bracket is left out when there is no interval."""
    if not _finite(value):
        return DASH
    text = fmt(float(value) * scale, spec, signed=signed) + unit  # type: ignore[arg-type]
    if _finite(lo) and _finite(hi):
        lo_s = fmt(float(lo) * scale, spec, signed=signed)  # type: ignore[arg-type]
        hi_s = fmt(float(hi) * scale, spec, signed=signed)  # type: ignore[arg-type]
        text += f" [{lo_s}, {hi_s}]"
    return text


# Short names for table rows; the full definitions are in the method notes (from measures.py).
SHORT_NAMES = {
    "transfer_ratio": "transfer ratio (primary)",
    "worst_ratio": "worst-language ratio",
    "ratio_spread": "spread of ratios",
    "transfer_gap": "transfer gap",
    "mean_zero_shot": "zero-shot mean",
    "english": "English (in-language)",
}


def measure_name(key: str, unit: str = "") -> str:
    name = SHORT_NAMES.get(key, BY_KEY[key].label if key in BY_KEY else key)
    return f"{name}, {unit}" if unit else name


def fmt_p(p: object) -> str:
    if not _finite(p):
        return DASH
    v = float(p)  # type: ignore[arg-type]
    return "< 0.001" if v < 0.001 else fmt(v, ".3f")


def seeds_text(n: object) -> str:
    """Seeds per arm that would detect the observed effect; -1 means seeds alone cannot, inf more
    than power.MAX_SEEDS would."""
    if n == math.inf:
        return f"> {MAX_SEEDS}"
    if not _finite(n):
        return DASH
    return "more test items" if float(n) < 0 else str(int(float(n)))  # type: ignore[arg-type]


def level_text(level: object) -> str:
    return level_percent(float(level)) + " %" if _finite(level) else ""  # type: ignore[arg-type]


def _favours(r: pd.Series) -> str:
    if not r["robustness"]:
        return "– (descriptive)"
    return str(r["favours"])


def comparison_view(a: Analysis) -> TableView:
    """NER vs NLI per setting and measure; the primary row's interval is simultaneous over settings."""
    ner, nli = a.info.get("ner_target", "panx"), a.info.get("nli_target", "xnli")
    rows = []
    levels = set()
    for _, r in a.comparison.iterrows():
        diff = with_ci(r["diff"], r["diff_lo"], r["diff_hi"])
        if r["primary"] and _finite(r["level"]) and abs(float(r["level"]) - 0.95) > 1e-9:
            levels.add(level_text(r["level"]))
            diff += f" ({level_text(r['level'])})"
        rows.append([
            r["intermediate"],
            measure_name(r["measure"], r["unit"]),
            with_ci(r["ner"], r["ner_lo"], r["ner_hi"]),
            with_ci(r["nli"], r["nli_lo"], r["nli_hi"]),
            diff,
            fmt_p(r["p_adj"] if r["primary"] else r["p"]),
            _favours(r),
            fmt(r["mde80"]),
            seeds_text(r["seeds_needed"]),
        ])
    simult = (f" The primary interval is simultaneous over the settings ({', '.join(sorted(levels))} each, "
              "Bonferroni) and its p is adjusted to match.") if levels else ""
    return TableView(
        "Change of every measure: NER, NLI and NER − NLI",
        ["Intermediate", "Measure, unit of Δ", f"NER ({ner}) Δ [95 % CI]", f"NLI ({nli}) Δ [95 % CI]",
         "NER − NLI [CI]", "p", "More robust", "MDE80", "Seeds needed"],
        rows,
        "Δ: intermediate setting minus no intermediate task. Ratios are in % of English, so their changes are "
        "in percentage points (pp); scores and the transfer gap are in points of the target's metric. "
        "'More robust' is named only where the NER − NLI interval excludes 0, 'neither' where it includes 0 "
        "(higher ratios, lower spread and gap are more robust); the zero-shot mean and English are descriptive. "
        "MDE80: the smallest NER − NLI difference detected with 80 % power at the row's level (the primary "
        "row's simultaneous one); seeds needed: per arm, to detect the observed difference with 80 % power at "
        "the present test sets and that level." + simult,
    )


def replication_view(a: Analysis) -> TableView:
    rows = [
        [r["half"], r["intermediate"], with_ci(r["diff"], r["diff_lo"], r["diff_hi"]) + " pp",
         level_text(r["level"]), fmt_p(r["p_adj"]), "yes" if r["decided"] else "no", str(r["favours"])]
        for _, r in a.replication.iterrows()
    ]
    return TableView(
        "Primary comparison (transfer ratio, NER − NLI) on each replication half",
        ["Half", "Intermediate", "NER − NLI [CI]", "CI level", "p", "Decided", "More robust"],
        rows,
        "Every test set is split into two fixed halves by a hash of the item index; the comparison is "
        "repeated on each. Decided: the interval excludes 0.",
    )


def replication_sentences(a: Analysis) -> list[str]:
    """The status sentence per setting with a primary comparison (from analysis.compare)."""
    if a.comparison.empty:
        return []
    primary = a.comparison[a.comparison["primary"].astype(bool)]
    return [f"{r['intermediate']}: {replication_status(r, a.replication)}." for _, r in primary.iterrows()]


def measures_view(a: Analysis) -> TableView:
    rows = []
    for _, r in a.measures.iterrows():
        m = BY_KEY.get(r["measure"])
        vunit = {"%": " %", "pp": " pp"}.get(m.unit, "") if m is not None else ""
        share = fmt(float(r["item_share"]) * 100.0, ".0f") + " %" if _finite(r["item_share"]) else DASH
        rows.append([
            r["target"],
            r["intermediate"],
            measure_name(r["measure"], r["unit"]),
            f"{fmt(r['baseline_value'])}{vunit} → {fmt(r['value'])}{vunit}",
            with_ci(r["delta"], r["ci_lo"], r["ci_hi"]),
            fmt_p(r["p"]),
            fmt(r["mde80"]),
            seeds_text(r["seeds_needed"]),
            share,
            f"{r['n_seeds']} / {r['n_seeds_baseline']}",
        ])
    return TableView(
        "Effect of each intermediate setting on each measure, per target",
        ["Target", "Intermediate", "Measure, unit of Δ", "Baseline → intermediate", "Δ [95 % CI]", "p",
         "MDE80", "Seeds needed", "Item share", "Seeds (int. / base)"],
        rows,
        "MDE80 and seeds needed (per arm) as in the comparison table. Item share: the part of the variance that "
        "comes from the common test items (more test data, not more seeds, shrinks it). p is not corrected for "
        "the number of measures.",
    )


def effect_summary_view(a: Analysis) -> TableView:
    rows = []
    for _, r in a.effect_summary.iterrows():
        rows.append([
            r["target"],
            r["intermediate"],
            f"{r['n_seeds']} / {r['n_seeds_baseline']}",
            f"{r['improved']} / {r['hurt']} / {r['not_significant']}"
            + (f" (+{r['untested']} n/a)" if r["untested"] else ""),
            f"{r['worst_language']} ({fmt(r['worst_delta'], signed=True)})"
            if isinstance(r["worst_language"], str)
            else DASH,
            f"{fmt(r['seed_std'], '.2f')} / {fmt(r['seed_std_baseline'], '.2f')}",
            str(r["method"]),
        ])
    return TableView(
        "Per-language verdicts over the zero-shot languages",
        ["Target", "Intermediate", "Seeds (int. / base)", "Improved / hurt / n.s.", "Worst language (Δ, points)",
         "Seed std of zero-shot mean (int. / base)", "Interval from"],
        rows,
        "Verdicts after Holm's correction across the zero-shot languages of each pair, "
        f"α = {a.info.get('alpha', 0.05):g}. Interval from: seeds+items (both counted), seeds (no per-example "
        "statistics), items (one seed: no verdict).",
    )


def effects_pivot_view(a: Analysis, target: str) -> TableView:
    e = a.effects[a.effects["target"] == target]
    settings = list(dict.fromkeys(e["intermediate"]))
    source = a.info.get("source", "en")
    rows = []
    for lang, sub in e.groupby("language", sort=False):
        cells = {
            r["intermediate"]: with_ci(r["delta"], r["ci_lo"], r["ci_hi"])
            + (" *" if r["verdict"] in ("improved", "hurt") else "")
            for _, r in sub.iterrows()
        }
        name = f"{lang} (in-language)" if lang == source else str(lang)
        rows.append([name, fmt(sub["baseline_score"].iloc[0])] + [cells.get(s, DASH) for s in settings])
    return TableView(
        f"{target}: per-language change vs baseline (points)",
        ["Language", "Baseline"] + [f"{s}: Δ [95 % CI]" for s in settings],
        rows,
        "* significant after Holm's correction across the zero-shot languages (the source language is "
        "tested on its own, on the report half of its dev set).",
    )


def robustness_view(a: Analysis) -> TableView:
    rows = []
    for _, r in a.robustness.iterrows():
        worst = (
            f"{r['worst_language']} ({fmt(r['worst_score'])})"
            if isinstance(r["worst_language"], str)
            else DASH
        )
        rho = fmt(r["spearman_rho"], ".2f", signed=True) + (
            f" (p={fmt(r['spearman_p'], '.2f')})" if _finite(r["spearman_p"]) else ""
        )
        rows.append(
            [
                r["target"],
                r["intermediate"],
                str(r["n_seeds"]),
                fmt(r["source_score"]),
                fmt(r["mean_zero_shot"]),
                fmt(r["transfer_gap"]),
                fmt(r["avg_seed_std"], ".2f"),
                worst,
                fmt(r["worst_k_mean"]),
                fmt(r["delta_std"], ".2f"),
                rho,
            ]
        )
    k = int(a.info.get("k", 3))
    return TableView(
        "Robustness per target and setting (baseline included)",
        [
            "Target",
            "Setting",
            "Seeds",
            a.info.get("source", "en"),
            "Mean zero-shot",
            "Transfer gap",
            "Avg seed std",
            "Worst language",
            f"Worst-{k} mean",
            "Std of Δ",
            "Spearman ρ(Δ, baseline)",
        ],
        rows,
        "Seed std is the sample standard deviation over seeds (– with a single seed).",
    )


def selection_summary_view(a: Analysis) -> TableView:
    rows = [
        [
            r["target"],
            r["intermediate"],
            fmt(r["mean_loss"], ".2f"),
            f"{fmt(r['max_loss'], '.2f')} ({r['max_loss_language']})"
            if isinstance(r["max_loss_language"], str)
            else DASH,
            fmt(r["share_with_loss"] * 100.0, ".0f") + " %" if _finite(r["share_with_loss"]) else DASH,
        ]
        for _, r in a.selection_summary.iterrows()
    ]
    return TableView(
        "Checkpoint selection: English dev vs per-language oracle",
        ["Target", "Setting", "Mean loss", "Max loss (language)", "Languages with a loss"],
        rows,
        "Loss = the language's cross-fitted oracle score (step chosen on one half of its items, scored on the "
        "other) minus its score at the step chosen on English's selection half; negative values are noise "
        "around no loss.",
    )


def selection_pivot_view(a: Analysis, target: str) -> TableView:
    s = a.selection[a.selection["target"] == target]
    settings = list(dict.fromkeys(s["intermediate"]))
    rows = []
    for lang, sub in s.groupby("language", sort=False):
        cells = {
            r["intermediate"]: f"{fmt(r['selected'])} / {fmt(r['oracle'])} ({fmt(r['loss'], '.1f')})"
            for _, r in sub.iterrows()
        }
        rows.append([lang] + [cells.get(x, DASH) for x in settings])
    return TableView(
        f"{target}: English-dev selected / oracle (loss), mean over seeds",
        ["Language"] + settings,
        rows,
    )


def strategy_summary_view(a: Analysis) -> TableView:
    """Zero-shot mean under each selection strategy, with its seed spread and distance to the oracle."""
    rows = []
    for _, r in a.strategy_summary.iterrows():
        k_needed = r.get("k_needed")
        rows.append([r["target"], r["intermediate"], r["strategy"], fmt(r["zero_shot_mean"]),
                     fmt(r["seed_std"], ".2f"), fmt(r["vs_english"], ".2f"), fmt(r["gap_to_oracle"], ".2f"),
                     str(int(k_needed)) if _finite(k_needed) else DASH])
    return TableView(
        "Checkpoint selection strategies: zero-shot mean over languages",
        ["Target", "Setting", "Strategy", "Zero-shot mean", "Seed std", "vs English dev", "Oracle minus it",
         "k within 1 pt"],
        rows,
        "Every strategy is scored on the same items of each language (those no k-shot draw used; English: the "
        "report half). k-shot-K: K labelled target-language examples choose the step; average-*: weights averaged "
        "over the evaluated checkpoints; oracle: cross-fitted per language. 'k within 1 pt': the smallest K "
        "whose zero-shot mean is within 1 point of the oracle's. Per-language rows with intervals: strategies.csv.",
    )


def strategy_answer_view(a: Analysis) -> TableView:
    """The NER-vs-NLI answer under each strategy, and how much it moves with the seed."""
    rows = [
        [r["intermediate"], measure_name(r["measure"]), r["strategy"],
         with_ci(r["diff"], r["diff_lo"], r["diff_hi"], unit=f" {r['unit']}"), r["favours"],
         fmt(r["seed_std"], ".2f"), "yes" if bool(r["most_stable"]) else ""]
        for _, r in a.strategy_answer.iterrows()
    ]
    return TableView(
        "NER vs NLI under each checkpoint-selection strategy",
        ["Setting", "Measure", "Strategy", "Effect on NER − effect on NLI", "Favours", "Seed std of the answer",
         "Most stable"],
        rows,
        "Seed std: the standard deviation over seeds of the per-seed answer (NER and NLI runs of one seed share "
        "their intermediate model); the most stable strategy has the smallest: " + UNRANKED + ".",
    )


def intermediate_view(a: Analysis) -> TableView:
    """Phase 2's English dev score per setting, task and seed, beside the task's chance level."""
    t = a.intermediate
    seeds = sorted(set(t["seed"]))
    rows = []
    for (inter, task, metric, chance), g in t.groupby(["intermediate", "task", "metric", "chance"], sort=True):
        by_seed = dict(zip(g["seed"], g["score"], strict=True))
        low = [str(s) for s in seeds if s in by_seed and by_seed[s] <= chance]
        rows.append([inter, task, metric, fmt(chance), *(fmt(by_seed.get(s)) for s in seeds),
                     f"at or below chance in seed {', '.join(low)}" if low else ""])
    return TableView(
        "What phase 2 learned: English dev score of each intermediate task, per seed",
        ["Intermediate", "Task", "Metric", "Chance", *(f"Seed {s}" for s in seeds), "Note"],
        rows,
        "The score of the checkpoint each phase-2 run kept, on its task's English dev set (the evaluation "
        "examples the config allowed). Chance is uniform guessing; a classifier that learned nothing also "
        "reaches its dev set's majority class, which can be well above chance (SICK's: about 56 %), and the "
        "same score in every seed is another sign of it. A setting whose tasks were not learned still has "
        "its effects computed above: they are the effects of that (perturbed) encoder.",
    )
