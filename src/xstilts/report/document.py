"""The report's content as a list of format-neutral blocks.

Why: the HTML and the Markdown report must be twins. Deciding *what* is shown (sections,
tables, figures, captions, notes) once, here, and leaving only *how* to ``html.py`` and
``markdown.py`` makes it impossible for the two to drift apart.

The first screen is the answer: the answer figure right under the title, the calibrated answer
sentence right under the figure, and the details after it.
"""

from __future__ import annotations

from dataclasses import dataclass

from xstilts.analysis import Analysis
from xstilts.analysis.measures import MEASURES
from xstilts.report.plots import figure_key
from xstilts.report.tables import (
    TableView,
    comparison_view,
    effect_summary_view,
    effects_pivot_view,
    intermediate_view,
    measure_name,
    measures_view,
    replication_sentences,
    replication_view,
    robustness_view,
    selection_pivot_view,
    selection_summary_view,
    strategy_answer_view,
    strategy_summary_view,
)


@dataclass
class Block:
    kind: str  # "h1" | "h2" | "h3" | "p" | "summary" | "table" | "image" | "list"
    text: str = ""
    table: TableView | None = None
    image: str | None = None  # key into the rendered figures
    items: list[str] | None = None


METHOD_NOTES = [
    "Effect (Δ): the mean over seeds of the intermediate setting's value minus the mean over seeds of the "
    "no-intermediate baseline's, for each evaluation language's score (points of the target's metric) and for "
    "each measure below. Every measure is computed per run first, so its effect has mean zero when intermediate "
    "training does nothing.",
    "Intervals: Student-t intervals, Δ ± t(df)·se. The variance adds two parts: the training-seed variance, "
    "pooled over the two arms (n_I + n_B − 2 degrees of freedom), and the common test-item variance, from a "
    "bootstrap over test items whose draws are shared by every run and by every language of a parallel "
    "(translated) test set; the part of it each model has on its own is already in the seed variance and is "
    "removed. The degrees of freedom are Satterthwaite's. With one seed per arm the seed variance is unknown: "
    "the interval then covers test items only and no p-value or verdict is given. Without per-example "
    "statistics the item part is taken as 0 (column 'Interval from').",
    "p-values: two-sided, from the same t and degrees of freedom as the interval, so p < 0.05 exactly when the "
    "95 % interval excludes 0. Per-language verdicts (improved / hurt / n.s., '*' in tables, filled markers in "
    "figures) use Holm's correction across the zero-shot languages of each (target, intermediate) pair; the "
    "source language is in-language, not transfer, and is tested on its own.",
    "Primary measure: the transfer ratio, 100 · (mean zero-shot score − chance) / (English score − chance): the "
    "share of English's above-chance performance that survives zero-shot transfer, in %. It is free of the "
    "metric's unit and chance level (entity F1 and 3-way accuracy, chance 33.3, sit on one scale) and does not "
    "move when intermediate training changes English and every other language in proportion; its changes, and "
    "the NER − NLI difference of those changes, are in percentage points (pp). Undefined for a run whose English "
    "score is not above chance.",
    "NER vs NLI: (effect on NER) − (effect on NLI) per measure. When both targets ran the same seeds it is formed "
    "per seed (one intermediate model feeds both targets). With several intermediate settings the primary "
    "intervals are simultaneous (Bonferroni, level 1 − α/m) and the primary p is adjusted to min(1, m·p), so an "
    "interval that excludes 0 is a claim that survives the correction. A target is called more robust only "
    "where that interval excludes 0.",
    "English is reported on the held-out report half of its dev set; the other half chose the checkpoint, so "
    "English's score is not inflated by the selection.",
    "Replication: every test set is split into two fixed halves by a hash of the item index, and the primary "
    "comparison is repeated on each half.",
    "Power: MDE is the smallest true effect detected with 80 % power at α = 0.05, (t(1 − α/2) + t(0.8)) · se; "
    "seeds/arm needed is the number of seeds at which the observed effect would be detected with 80 % power at "
    "the present test sets ('more test items' when the common item variance alone is too large). Both rest on "
    "variances estimated from few seeds and are planning aids.",
    "Measured coverage of these intervals in simulated experiments with known effects: docs/statistics.md.",
    "Robustness table (descriptive, no intervals): transfer gap = source-language score minus the mean zero-shot "
    "score (as in XTREME); worst-k mean = mean of the k lowest zero-shot scores; seed std = sample standard "
    "deviation over seeds; Spearman ρ = rank correlation of a language's Δ with its baseline score (negative: "
    "helps weak languages more).",
    "Checkpoint selection (Keung et al., 2020): the step with the best score on the selection half of English dev "
    "versus a per-language oracle. The oracle is cross-fitted, so that the maximum over a noisy curve does not "
    "count as a loss: the step best on one replication half of the language's items is scored on the other half, "
    "and the other way round. The loss is what selection by English costs that language; it can be negative "
    "where the curve is flat. The in-sample oracle's loss (biased upwards) is in selection.csv as loss_naive.",
]


def measure_notes() -> list[str]:
    return [f"{measure_name(m.key)}: {m.label} ({m.unit})" for m in MEASURES]


def split_summary(text: str) -> tuple[str, str, str]:
    """(question, answer, rest): the question paragraph, the paragraph(s) up to the one holding the
    "Answer" (with its replication and power lines), and the details after it."""
    paras = [p for p in text.strip().split("\n\n") if p.strip()]
    question = paras.pop(0) if paras and paras[0].startswith("Question:") else ""
    at = next((i for i, p in enumerate(paras) if p.startswith("Answer")), None)
    if at is None:
        return question, "\n\n".join(paras), ""
    return question, "\n\n".join(paras[: at + 1]), "\n\n".join(paras[at + 1 :])


def _answer_caption(question: str) -> str:
    """The full question (it names the targets); the figure carries its own legend."""
    return question or "Per-language change vs no intermediate task with 95 % CIs, NER and NLI side by side."


def _no_figure_reason(a: Analysis) -> str:
    ner, nli = a.info.get("ner_target", "panx"), a.info.get("nli_target", "xnli")
    return (f"No answer figure: there are no per-language effects for {ner} or {nli} "
            "(they need finished runs of an intermediate setting and of the baseline).")


def build_document(a: Analysis, figures: set[str], title: str) -> list[Block]:
    """The report's blocks; ``figures`` names the figures that could be drawn."""
    info = a.info
    blocks = [Block("h1", title)]
    stale = info.get("stale") or {}
    if stale:  # on the first screen: these numbers may not be the data's as it is now
        blocks.append(Block("p", f"Warning: {len(stale)} stale run(s) are included; their data or starting "
                                 "weights changed since they ran (see 'Stale runs'; `xstilts run CONFIG "
                                 "--rerun-stale` recomputes them)."))
    question, answer, rest = split_summary(a.summary)
    if figure_key("answer") in figures:
        blocks.append(Block("image", _answer_caption(question), image=figure_key("answer")))
    else:
        blocks.append(Block("p", _no_figure_reason(a)))
        if question:
            blocks.append(Block("p", question))
    blocks.append(Block("summary", answer))
    if rest:
        blocks.append(Block("summary", rest))
    targets = ", ".join(f"{t} ({info['metrics'].get(t, '?')})" for t in info.get("targets", [])) or "none"
    blocks.append(
        Block(
            "p",
            f"{info.get('n_runs', 0)} finished target runs; targets: {targets}; "
            f"{info.get('n_boot')} item resamples, random seed {info.get('seed')}; "
            f"baseline '{info.get('baseline')}', source language '{info.get('source')}'.",
        )
    )

    if stale:
        blocks.append(Block("h2", "Stale runs"))
        blocks.append(Block("list", items=[f"{run_id} (stale): {why}" for run_id, why in stale.items()]))

    if len(a.intermediate):
        blocks.append(Block("h2", "Phase 2: what each intermediate setting learned"))
        blocks.append(Block("table", table=intermediate_view(a)))

    blocks.append(Block("h2", "NER vs NLI, measure by measure"))
    if len(a.comparison):
        blocks.append(Block("table", table=comparison_view(a)))
    else:
        blocks.append(Block("p", "No comparison: no intermediate setting was run on both targets together with "
                                 "the baseline."))

    blocks.append(Block("h2", "Replication on split halves"))
    if len(a.replication):
        blocks.append(Block("table", table=replication_view(a)))
    sentences = replication_sentences(a)
    if sentences:
        blocks.append(Block("list", items=sentences))
    elif not len(a.replication):
        blocks.append(Block("p", "Replication not available: it needs a NER vs NLI comparison and per-example "
                                 "statistics for every run."))

    blocks.append(Block("h2", "Effects per measure and target"))
    if len(a.measures):
        blocks.append(Block("table", table=measures_view(a)))
    else:
        blocks.append(Block("p", "No effects: no target has both an intermediate setting and the baseline."))

    blocks.append(Block("h2", "Per-language effects"))
    if len(a.effect_summary):
        blocks.append(Block("table", table=effect_summary_view(a)))
    for target in sorted(set(a.effects["target"])):
        blocks.append(Block("h3", target))
        for stem, caption in (
            ("delta_heatmap", f"{target}: Δ per intermediate task and language (* = significant after Holm)"),
            ("delta_ci", f"{target}: Δ with 95 % CIs per language (filled = significant after Holm)"),
        ):
            if figure_key(stem, target) in figures:
                blocks.append(Block("image", caption, image=figure_key(stem, target)))
        blocks.append(Block("table", table=effects_pivot_view(a, target)))
    missing = sorted(set(a.robustness["target"]) - set(a.effects["target"]))
    if missing:
        blocks.append(Block("p", f"No effects for {', '.join(missing)}: no baseline to compare with."))

    blocks.append(Block("h2", "Robustness (descriptive)"))
    blocks.append(Block("table", table=robustness_view(a)))
    if figure_key("transfer_gap") in figures:
        blocks.append(
            Block("image", "Transfer gap per setting: English minus the zero-shot mean (smaller is better transfer "
                           "only where English did not fall)", image=figure_key("transfer_gap"))
        )

    blocks.append(Block("h2", "Seed spread"))
    for target in sorted(set(a.robustness["target"])):
        key = figure_key("seed_spread", target)
        if key in figures:
            blocks.append(Block("image", f"{target}: seed standard deviation per zero-shot language", image=key))
        else:
            blocks.append(Block("p", f"{target}: no seed spread to show (a single seed per setting)."))
    if a.robustness.empty:
        blocks.append(Block("p", "No runs, so no seed spread."))

    blocks.append(Block("h2", "Model selection: English dev vs oracle"))
    if len(a.selection):
        blocks.append(Block("table", table=selection_summary_view(a)))
        for target in sorted(set(a.selection["target"])):
            blocks.append(Block("table", table=selection_pivot_view(a, target)))
    else:
        blocks.append(Block("p", "No training curves in the store, so checkpoint selection cannot be examined."))
    if len(a.strategy_summary):
        averaged = a.strategy_summary["strategy"].astype(str).str.startswith("average").any()
        blocks.append(Block("h3", "English dev, k-shot, weight averaging and oracle" if averaged
                            else "English dev, k-shot and oracle"))
        blocks.append(Block("table", table=strategy_summary_view(a)))
        if len(a.strategy_answer):
            blocks.append(Block("table", table=strategy_answer_view(a)))

    blocks.append(Block("h2", "Method"))
    blocks.append(Block("list", items=METHOD_NOTES))
    blocks.append(Block("h3", "Measures"))
    blocks.append(Block("list", items=measure_notes()))
    if a.computation:
        blocks.append(Block("h3", "Computation"))
        blocks.append(Block("list", items=list(a.computation)))
    if a.warnings:
        blocks.append(Block("h2", "Warnings"))
        blocks.append(Block("list", items=list(a.warnings)))
    blocks.append(Block("h2", "Files"))
    blocks.append(Block("list", items=[f"{name}.csv" for name in a.tables()] + ["summary.txt"]))
    return blocks
