"""Reader-facing views of the analysis tables, shared by the HTML and the Markdown report.

Why a view layer: the CSVs keep every column at full precision for re-analysis, while a reader
needs a few columns, numbers with a CI next to them, and "–" where something could not be
computed. Building the views once keeps the two report formats saying exactly the same thing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xstilts.analysis import Analysis
from xstilts.analysis.summary import fmt

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


# How each comparison measure is shown: (scale, format, unit of values, unit of differences, signed values)
_MEASURE_STYLE = {
    "mean_rel": (100.0, ".1f", " %", " pp", True),
    "worst_rel": (100.0, ".1f", " %", " pp", True),
    "worst_k_rel": (100.0, ".1f", " %", " pp", True),
    "rel_std": (100.0, ".1f", " pp", " pp", False),
    "share_hurt": (100.0, ".0f", " %", " pp", False),
    "share_improved": (100.0, ".0f", " %", " pp", False),
    "spearman_rho": (1.0, ".2f", "", "", True),
}


def comparison_view(a: Analysis) -> TableView:
    ner, nli = a.info.get("ner_target", "panx"), a.info.get("nli_target", "xnli")
    rows = []
    for _, r in a.comparison.iterrows():
        scale, spec, unit, diff_unit, signed = _MEASURE_STYLE.get(r["measure"], (1.0, ".1f", "", "", True))
        fav = r["favours"]
        if fav in ("NER", "NLI"):
            fav += " (CI excludes 0)" if r["confident"] else " (point estimate)"
        elif fav == "neither":
            fav = "neither (CI includes 0)"
        label = r["label"] + (" — primary" if r["primary"] else "")
        rows.append(
            [
                r["intermediate"],
                label,
                with_ci(r["ner"], r["ner_ci_lo"], r["ner_ci_hi"], scale, spec, unit, signed),
                with_ci(r["nli"], r["nli_ci_lo"], r["nli_ci_hi"], scale, spec, unit, signed),
                with_ci(r["ner_minus_nli"], r["diff_ci_lo"], r["diff_ci_hi"], scale, spec, diff_unit),
                fav if r["better"] else DASH,
            ]
        )
    return TableView(
        "NER vs NLI, measure by measure",
        ["Intermediate", "Measure", f"NER ({ner})", f"NLI ({nli})", "NER − NLI [95 % CI]", "More robust"],
        rows,
        "Relative changes: gains as a share of the headroom to 100, "
        "losses as a share of the baseline's margin "
        "above chance. Brackets are 95 % bootstrap CIs.",
    )


def effect_summary_view(a: Analysis) -> TableView:
    rows = []
    for _, r in a.effect_summary.iterrows():
        rows.append(
            [
                r["target"],
                r["intermediate"],
                f"{r['n_seeds']} / {r['n_seeds_baseline']}",
                with_ci(r["mean_delta"], r["mean_delta_lo"], r["mean_delta_hi"]),
                with_ci(r["mean_rel"], r["mean_rel_lo"], r["mean_rel_hi"], 100.0, unit=" %"),
                f"{r['improved']} / {r['hurt']} / {r['not_significant']}"
                + (f" (+{r['untested']} n/a)" if r["untested"] else ""),
                f"{r['worst_language']} ({fmt(r['worst_delta'], signed=True)})"
                if isinstance(r["worst_language"], str)
                else DASH,
                with_ci(r["gap_change"], r["gap_change_lo"], r["gap_change_hi"]),
                r["ci_method"],
            ]
        )
    return TableView(
        "Effect of each intermediate task, over zero-shot languages",
        [
            "Target",
            "Intermediate",
            "Seeds (int. / base)",
            "Mean Δ [95 % CI]",
            "Mean relative Δ [95 % CI]",
            "Improved / hurt / n.s.",
            "Worst language (Δ)",
            "Transfer-gap change [95 % CI]",
            "CI from",
        ],
        rows,
        "Significance after Holm's correction across zero-shot languages, "
        f"alpha = {a.info.get('alpha', 0.05):g}.",
    )


def effects_pivot_view(a: Analysis, target: str) -> TableView:
    e = a.effects[a.effects["target"] == target]
    settings = list(dict.fromkeys(e["intermediate"]))
    rows = []
    for lang, sub in e.groupby("language", sort=False):
        cells = {
            r["intermediate"]: with_ci(r["delta"], r["ci_lo"], r["ci_hi"])
            + (" *" if r["significant"] else "")
            for _, r in sub.iterrows()
        }
        rows.append([lang, fmt(sub["baseline_score"].iloc[0])] + [cells.get(s, DASH) for s in settings])
    return TableView(
        f"{target}: per-language change vs baseline",
        ["Language", "Baseline"] + [f"{s}: Δ [95 % CI]" for s in settings],
        rows,
        "* significant after Holm's correction (the source language is tested on its own).",
    )


def robustness_view(a: Analysis) -> TableView:
    rows = []
    for _, r in a.robustness.iterrows():
        worst = (
            f"{r['worst_language']} ({fmt(r['worst_score'])})"
            if isinstance(r["worst_language"], str)
            else DASH
        )
        rho = fmt(r["spearman_rho"], ".2f") + (
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
            str(r["n_languages"]),
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
        ["Target", "Setting", "Languages", "Mean loss", "Max loss (language)", "Languages with a loss"],
        rows,
        "Loss = best score on the language's own curve "
        "minus its score at the step with the best English score.",
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
