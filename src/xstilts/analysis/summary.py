"""The plain-language answer, generated from the numbers (never written by hand).

Every sentence is assembled from the comparison, measure and replication tables, so a different
store gives a different text. A direction is only claimed where the primary interval excludes zero
(simultaneously over the settings asked about); otherwise the text says the data do not separate
NER and NLI, and how large a difference the experiment could have detected.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from xstilts.analysis.measures import PRIMARY
from xstilts.analysis.power import MAX_SEEDS

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


def level_percent(level: float) -> str:
    """A confidence level as prose: 0.95 -> "95", 0.975 -> "97.5"."""
    return f"{level * 100:.1f}".rstrip("0").rstrip(".")


def ci_text(lo: object, hi: object, unit: str = "", level: float = 0.95) -> str:
    lo_v, hi_v = float(lo), float(hi)  # type: ignore[arg-type]
    if not (math.isfinite(lo_v) and math.isfinite(hi_v)):
        return "no interval"
    return f"{level_percent(level)} % CI {fmt(lo_v, signed=True)} to {fmt(hi_v, signed=True)}{unit}"


def _join(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _row(frame: pd.DataFrame, **eq: object) -> pd.Series | None:
    sel = frame
    for k, v in eq.items():
        sel = sel[sel[k] == v]
    return sel.iloc[0] if len(sel) else None


def replication_status(full: pd.Series, halves: pd.DataFrame) -> str:
    """Plain words: does the primary answer hold on both halves of the test sets?"""
    rows = halves[halves["intermediate"] == full["intermediate"]]
    if not np.isfinite(full["diff"]):  # the study of 2026-11-29: XNLI English at chance in some runs
        return "not available (the primary measure is undefined on the full test sets)"
    if len(rows) != 2:
        return "not available (needs per-example statistics for every run)"
    signs = {float(np.sign(v)) for v in rows["diff"]}
    decided = [bool(d) for d in rows["decided"]]
    same = ", ".join(f"{h}: {fmt(v, signed=True)} pp" for h, v in zip(rows["half"], rows["diff"], strict=True))
    if full["favours"] in ("NER", "NLI"):
        if signs == {float(np.sign(full["diff"]))} and all(decided):
            return f"replicated: the interval excludes zero on both halves ({same})"
        if signs == {float(np.sign(full["diff"]))}:
            return f"same direction on both halves, but not decided on each alone ({same})"
        return f"NOT replicated: the halves disagree in direction ({same})"
    if len(signs) == 1:
        return f"no verdict; both halves point the same way ({same})"
    return f"no verdict; the halves point in opposite directions ({same})"


def verdict_sentence(inter: str, row: pd.Series) -> str:
    diff = f"NER − NLI = {fmt(row['diff'], signed=True)} pp ({ci_text(row['diff_lo'], row['diff_hi'], ' pp', row['level'])})"
    fav = row["favours"]
    if fav in ("NER", "NLI"):
        more, less = (fav, "NLI" if fav == "NER" else "NER")
        return f"under {inter}, cross-lingual transfer is more robust for {more} than for {less}: {diff}"
    if fav == "neither":
        return f"under {inter}, the data do not separate NER and NLI: {diff}; the interval includes zero"
    if fav == "no verdict":
        return (f"under {inter}, no verdict: with one seed per arm training variance cannot be estimated "
                f"({diff}, test items only)")
    return f"under {inter}, the transfer ratio is undefined for a target (English not above chance in some run)"


def _english_moved(comparison: pd.DataFrame, inter: str) -> str:
    """'NER', 'NLI' or 'NER and NLI': the targets whose English score changed under ``inter`` (95 % CI
    excluding 0), which the transfer gap then moves with; '' if neither."""
    rows = comparison[(comparison["intermediate"] == inter) & (comparison["measure"] == "english")]
    if rows.empty:
        return ""
    r = rows.iloc[0]
    moved = [name for name, lo, hi in (("NER", r["ner_lo"], r["ner_hi"]), ("NLI", r["nli_lo"], r["nli_hi"]))
             if lo > 0 or hi < 0]
    return " and ".join(moved)


def _power_sentence(row: pd.Series) -> str:
    mde, need = float(row["mde80"]), float(row["seeds_needed"])
    parts = []
    if math.isfinite(mde):
        parts.append(f"the smallest NER − NLI difference this design detects with 80 % power at its "
                     f"{level_percent(float(row['level']))} % level is {fmt(mde)} pp")
    if not row["decided"]:
        observed = f"resolving the observed {fmt(row['diff'], signed=True)} pp would take"
        if need == math.inf:
            parts.append(f"{observed} more than {MAX_SEEDS} seeds per arm")
        elif need > 0:
            parts.append(f"{observed} about {int(need)} seeds per arm")
        elif need < 0:
            parts.append("the observed difference is below what the test sets can resolve at any number of seeds "
                         "(more test items are needed)")
    return "; ".join(parts)


def _target_lines(label: str, target: str, metric: str, inter: str, measures: pd.DataFrame,
                  effect_summary: pd.DataFrame) -> list[str]:
    name = METRIC_NAMES.get(metric, metric)
    get = {k: _row(measures, target=target, intermediate=inter, measure=k)
           for k in ("english", "mean_zero_shot", PRIMARY.key, "transfer_gap")}
    if get["english"] is None:
        return [f"{label} ({target}): no effect could be computed (missing runs or no baseline)."]

    def eff(r: pd.Series | None, unit: str) -> str:
        if r is None:
            return "–"
        return f"{fmt(r['delta'], signed=True)} {unit} ({ci_text(r['ci_lo'], r['ci_hi'], ' ' + unit)})"

    en, zs, ratio, gap = get["english"], get["mean_zero_shot"], get[PRIMARY.key], get["transfer_gap"]
    lines = [
        f"{label} ({target}, {name}): English (in-language) {fmt(en['baseline_value'])} → {fmt(en['value'])}, "
        f"{eff(en, 'points')}; zero-shot mean {fmt(zs['baseline_value'])} → {fmt(zs['value'])}, {eff(zs, 'points')}.",
        f"{label} transfer: ratio to English {fmt(ratio['baseline_value'])} % → {fmt(ratio['value'])} %, "
        f"{eff(ratio, 'pp')}; transfer gap {eff(gap, 'points')}.",
    ]
    s = _row(effect_summary, target=target, intermediate=inter)
    if s is not None:
        n = int(s["n_languages"])
        if int(s["untested"]) == n:
            per = "no per-language test was possible"
        else:
            hurt, same = int(s["hurt"]), int(s["not_significant"])
            per = (f"{int(s['improved'])} of {n} zero-shot languages improved, {hurt} {'was' if hurt == 1 else 'were'} "
                   f"hurt, {same} {'was' if same == 1 else 'were'} not significantly changed (Holm)")
        worst = ""
        if isinstance(s["worst_language"], str):  # "worst-affected" would misname a language that gained
            which = "every language gained; the least is" if float(s["worst_delta"]) > 0 else "the worst-affected is"
            worst = f"; {which} {s['worst_language']} ({fmt(s['worst_delta'], signed=True)} points)"
        lines.append(f"{label} per language: {per}{worst}.")
    return lines


def write_summary(comparison: pd.DataFrame, replication: pd.DataFrame, measures: pd.DataFrame,
                  effect_summary: pd.DataFrame, info: dict, warnings: list[str]) -> str:
    """The report's answer paragraph(s). ``info`` carries targets, metrics and settings."""
    ner, nli = info["ner_target"], info["nli_target"]
    metrics = info.get("metrics", {})
    lines = [
        "Question: does English intermediate-task training change the robustness of zero-shot cross-lingual "
        f"transfer differently for NER ({ner}) than for NLI ({nli})?",
        "",
    ]
    primary = comparison[comparison["primary"]] if len(comparison) else comparison
    if primary.empty:
        missing = [t for t in (ner, nli) if t not in set(measures["target"])]
        why = (f"no intermediate-vs-baseline effects for {_join(missing)}" if missing
               else "no intermediate setting was run on both targets")
        lines.append(f"Answer: this store cannot answer the question: {why}.")
    else:
        m = len(primary)
        simult = f" (intervals simultaneous over {m} settings)" if m > 1 else ""
        lines.append("Answer" + simult + ": " + "; ".join(verdict_sentence(r["intermediate"], r)
                                                          for _, r in primary.iterrows()) + ".")
        lines.append(
            "(Measure: the change of the transfer ratio — the zero-shot mean's share of English's above-chance "
            "score — in percentage points; English itself is reported separately, as a change of the task, not of "
            "transfer.)")
        for _, r in primary.iterrows():
            lines.append(f"Replication under {r['intermediate']}: {replication_status(r, replication)}.")
            power = _power_sentence(r)
            if power:
                lines.append(f"Power under {r['intermediate']}: {power}.")
    for inter in sorted(set(primary["intermediate"])) if len(primary) else []:
        lines += ["", f"Intermediate task {inter}:"]
        for label, target in (("NER", ner), ("NLI", nli)):
            lines += ["- " + x for x in _target_lines(label, target, metrics.get(target, ""), inter, measures,
                                                    effect_summary)]
        sec = comparison[(comparison["intermediate"] == inter) & ~comparison["primary"] & comparison["robustness"]]
        said = [f"{r['label'].split(':')[0]} favours {r['favours']}" for _, r in sec.iterrows()
                if r["favours"] in ("NER", "NLI")]
        moved = _english_moved(comparison, inter)
        why = ""
        if moved and any(r["measure"] == "transfer_gap" and r["favours"] in ("NER", "NLI") for _, r in sec.iterrows()):
            why = (f" (the gap is English minus the zero-shot mean, and English itself changed for {moved}: part "
                   "of the gap's change is English's, not transfer's)")
        lines.append("- Secondary transfer measures with intervals excluding zero: " + (_join(said) or "none") + why
                     + ".")
    lines += ["", "How sure we are: " + _certainty(measures, [ner, nli], info)]
    if warnings:
        lines += ["", "Caveats: " + " ".join(w.rstrip(".") + "." for w in warnings)]
    return "\n".join(lines)


def _certainty(measures: pd.DataFrame, targets: list[str], info: dict) -> str:
    sub = measures[measures["target"].isin(targets)]
    if sub.empty:
        return "nothing was estimated."
    seeds = sorted(set(sub["n_seeds"]) | set(sub["n_seeds_baseline"]))
    methods = set(sub["method"])
    text = (f"intervals are Student-t intervals whose variance adds the training-seed variance (pooled over the two "
            f"arms) and the test-item variance (from {info.get('n_boot')} item resamples shared by every run and by "
            f"every language of a parallel test set); seeds per arm: {_join(str(int(s)) for s in seeds)}")
    notes = []
    if any(1 < s < 4 for s in seeds):
        dfs = sorted({2 * int(s) - 2 for s in seeds if s > 1})
        notes.append(f"with so few seeds the seed variance rests on {_join(str(d) for d in dfs)} degrees of freedom "
                     "(Student t), which is why the intervals are wide; their coverage at these sizes, measured in "
                     "simulation, is in docs/statistics.md")
    if ("items" in methods or "none" in methods) and any(s < 2 for s in seeds):
        notes.append("with a single seed per arm training variance is unknown: intervals then cover test items only "
                     "and no verdict is given")
    if "none" in methods and any(s > 1 for s in seeds):  # "none" here: a measure undefined in some run
        notes.append("a measure undefined in some run (a ratio whose English score is not above chance) has no "
                     "interval and no verdict")
    if "seeds" in methods:
        notes.append("where per-example statistics are missing the test-item variance is not counted")
    return text + ("; " + "; ".join(notes) if notes else "") + "."
