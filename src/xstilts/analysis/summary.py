"""The plain-language answer, generated from the numbers (never written by hand).

Every sentence is assembled from the comparison and effect tables, so a different store gives
a different text; when the question cannot be answered (a target or its baseline is missing)
the text says so and why, instead of guessing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

# Below this many seeds the seed half of the bootstrap is known to be optimistic.
FEW_SEEDS = 5

METRIC_NAMES = {
    "f1": "entity F1",
    "accuracy": "accuracy",
    "token_accuracy": "token accuracy",
    "squad_f1": "answer F1",
    "exact_match": "exact match",
}


def fmt(x: object, spec: str = ".1f", signed: bool = False) -> str:
    """A number for prose and tables; missing values are an en dash, as in the report."""
    if x is None:
        return "–"
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(v):
        return "–"
    if float(format(v, spec)) == 0.0:
        v = 0.0  # no "-0.0"
    text = format(v, ("+" if signed else "") + spec)
    return text.replace("-", "−") if signed else text


def _pct(x: object) -> str:
    v = float(x) if x is not None else float("nan")  # type: ignore[arg-type]
    return fmt(v * 100.0, ".1f", signed=True) + " %" if math.isfinite(v) else "–"


def _ci(lo: object, hi: object, scale: float = 1.0, unit: str = "") -> str:
    lo_v, hi_v = float(lo), float(hi)  # type: ignore[arg-type]
    if not (math.isfinite(lo_v) and math.isfinite(hi_v)):
        return "no CI available"
    return f"95 % CI {fmt(lo_v * scale, signed=True)}{unit} to {fmt(hi_v * scale, signed=True)}{unit}"


def _join(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _target_sentence(
    label: str, target: str, metric: str, row: pd.Series | None, alpha: float, source: str
) -> str:
    if row is None:
        return f"{label} ({target}): no effect could be computed (missing runs or no baseline)."
    name = METRIC_NAMES.get(metric, metric)
    n = int(row["n_languages"])
    text = (
        f"{label} ({target}): zero-shot {name} changes by {fmt(row['mean_delta'], signed=True)} points on "
        f"average over {n} language{'s' if n != 1 else ''} "
        f"({_ci(row['mean_delta_lo'], row['mean_delta_hi'])}), a relative change of {_pct(row['mean_rel'])} "
        f"({_ci(row['mean_rel_lo'], row['mean_rel_hi'], 100.0, ' %')}); "
    )
    if int(row["untested"]) == n:
        text += "no per-language test was possible"
    else:
        text += (
            f"per language, {int(row['improved'])} improved, {int(row['hurt'])} were hurt and "
            f"{int(row['not_significant'])} showed no significant change (Holm-corrected, alpha = {alpha:g})"
        )
    if isinstance(row["worst_language"], str):
        text += f"; the worst-affected is {row['worst_language']} ({fmt(row['worst_delta'], signed=True)})"
    if math.isfinite(float(row["gap_change"])):
        text += (
            f"; the transfer gap to {source} changes by {fmt(row['gap_change'], signed=True)} points "
            f"({_ci(row['gap_change_lo'], row['gap_change_hi'])})"
        )
    return text + "."


def _verdict_sentence(inter: str, primary: pd.Series) -> str:
    diff = fmt(primary["ner_minus_nli"] * 100.0, signed=True)
    ci = _ci(primary["diff_ci_lo"], primary["diff_ci_hi"], 100.0, " pp")
    fav = primary["favours"]
    if fav == "n/a":
        return (
            f"Under {inter} the two targets cannot be compared "
            "(the relative change is missing for one of them)."
        )
    if fav == "neither":
        return (
            "Relative to the room each baseline had, "
            f"the NER − NLI difference under {inter} is {diff} pp ({ci}); "
            "the interval includes zero, so the data do not show either target to be more robust."
        )
    more, less = ("NER", "NLI") if fav == "NER" else ("NLI", "NER")
    how = (
        "the interval excludes zero" if primary["confident"] else "point estimate only, no interval available"
    )
    return (
        "Relative to the room each baseline had, "
        f"transfer under {inter} is more robust for {more} than for {less}: "
        f"NER − NLI = {diff} pp ({ci}; {how})."
    )


def _secondary_sentence(rows: pd.DataFrame) -> str:
    sec = rows[~rows["primary"] & (rows["better"] != "")]
    ner = [r["short"] for _, r in sec.iterrows() if r["favours"] == "NER"]
    nli = [r["short"] for _, r in sec.iterrows() if r["favours"] == "NLI"]
    other = len(sec) - len(ner) - len(nli)
    return (
        f"Secondary measures: {len(ner)} favour NER ({_join(ner) or 'none'}), {len(nli)} favour NLI "
        f"({_join(nli) or 'none'}), {other} undecided or unavailable."
    )


def write_summary(
    comparison: pd.DataFrame,
    effect_summary: pd.DataFrame,
    info: dict,
    warnings: list[str],
) -> str:
    """The report's answer paragraph(s). ``info`` carries targets, metrics and bootstrap settings."""
    ner, nli = info["ner_target"], info["nli_target"]
    metrics = info.get("metrics", {})
    alpha, n_boot = info.get("alpha", 0.05), info.get("n_boot", 0)
    source = info.get("source", "en")
    lines = [
        "Question: does English intermediate-task training make zero-shot cross-lingual transfer "
        "more or less "
        f"robust for NER ({ner}, {METRIC_NAMES.get(metrics.get(ner, 'f1'), 'F1')}) than for NLI "
        f"({nli}, {METRIC_NAMES.get(metrics.get(nli, 'accuracy'), 'accuracy')})?",
        "",
    ]
    primary = comparison[comparison["primary"]] if len(comparison) else comparison
    verdicts = {r["intermediate"]: r["favours"] for _, r in primary.iterrows()}
    decided = {v for v in verdicts.values() if v != "n/a"}
    if not decided:
        missing = [t for t in (ner, nli) if t not in set(effect_summary["target"])]
        why = (
            f"no intermediate-vs-baseline effects for {_join(missing)}"
            if missing
            else "no intermediate setting was run on both targets"
        )
        lines.append(f"Answer: this store cannot answer the question: {why}.")
    else:
        groups = {
            "NER": [i for i, v in verdicts.items() if v == "NER"],
            "NLI": [i for i, v in verdicts.items() if v == "NLI"],
            "neither": [i for i, v in verdicts.items() if v == "neither"],
        }
        parts = []
        if groups["NER"]:
            parts.append(f"transfer is more robust for NER than for NLI under {_join(groups['NER'])}")
        if groups["NLI"]:
            parts.append(f"transfer is more robust for NLI than for NER under {_join(groups['NLI'])}")
        if groups["neither"]:
            parts.append(f"the data do not separate the two under {_join(groups['neither'])}")
        lines.append("Answer: " + "; ".join(parts) + ".")
        lines.append(
            "(Robustness is judged by the mean relative change over zero-shot languages: gains as a share of "
            "the headroom to 100, losses as a share of the baseline's margin above chance.)"
        )
    for inter in sorted(verdicts):
        rows = comparison[comparison["intermediate"] == inter]
        lines += ["", f"Intermediate task {inter}:"]
        for label, target in (("NER", ner), ("NLI", nli)):
            s = effect_summary[
                (effect_summary["target"] == target) & (effect_summary["intermediate"] == inter)
            ]
            row = s.iloc[0] if len(s) else None
            lines.append("- " + _target_sentence(label, target, metrics.get(target, ""), row, alpha, source))
        lines.append("- " + _verdict_sentence(inter, rows[rows["primary"]].iloc[0]))
        lines.append("- " + _secondary_sentence(rows))
    lines += [
        "",
        "How sure we are: " + _certainty(effect_summary, [ner, nli], n_boot, info.get("level", 0.95)),
    ]
    if warnings:
        lines += ["", "Caveats: " + " ".join(w.rstrip(".") + "." for w in warnings)]
    return "\n".join(lines)


def _certainty(effect_summary: pd.DataFrame, targets: list[str], n_boot: int, level: float) -> str:
    sub = effect_summary[effect_summary["target"].isin(targets)]
    if sub.empty:
        return "nothing was estimated."
    seeds = sorted(set(sub["n_seeds"]) | set(sub["n_seeds_baseline"]))
    methods = set(sub["ci_method"])
    text = (
        f"intervals are {level:.0%} percentile intervals from {n_boot} paired bootstrap replicates "
        f"(seeds per setting: {_join(str(s) for s in seeds)})"
    )
    notes = []
    if methods <= {"examples+seeds"}:
        notes.append("resampling test examples and training seeds together")
    if methods & {"examples"}:
        notes.append(
            "with a single seed some intervals reflect test-set sampling only, not training randomness"
        )
    if methods & {"seeds", "mixed"}:
        notes.append("where per-example statistics are missing, only seeds are resampled")
    if methods & {"none", "mixed"}:
        notes.append("with one seed and no per-example statistics some effects have no interval at all")
    few = [s for s in seeds if 1 < s < FEW_SEEDS]
    if few:
        notes.append(
            f"with only {_join(str(s) for s in few)} seeds, resampling seeds understates training-seed "
            "variance, so intervals on averages over many languages (where seed noise dominates) are "
            "optimistic; an interval whose edge is close to zero should not be read as decisive"
        )
    return text + "; " + "; ".join(notes) + "."
