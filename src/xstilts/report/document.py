"""The report's content as a list of format-neutral blocks.

Why: the HTML and the Markdown report must be twins. Deciding *what* is shown (sections,
tables, figures, captions, notes) once, here, and leaving only *how* to ``html.py`` and
``markdown.py`` makes it impossible for the two to drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from xstilts.analysis import Analysis
from xstilts.report.plots import figure_key
from xstilts.report.tables import (
    TableView,
    comparison_view,
    effect_summary_view,
    effects_pivot_view,
    robustness_view,
    selection_pivot_view,
    selection_summary_view,
)


@dataclass
class Block:
    kind: str  # "h1" | "h2" | "h3" | "p" | "summary" | "table" | "image" | "list"
    text: str = ""
    table: TableView | None = None
    image: str | None = None  # key into the rendered figures
    items: list[str] | None = None


METHOD_NOTES = [
    "Effect (Δ): mean over seeds of the intermediate setting's score minus the mean over seeds of the "
    "no-intermediate baseline, per target and evaluation language, on the target's primary metric.",
    "95 % CIs: percentile intervals of a paired bootstrap. Each replicate resamples seeds with replacement "
    "(the same seeds for both arms when they ran the same seeds) and test examples within the language (the "
    "same examples for every run), and re-aggregates the metric exactly from per-example statistics "
    "(micro-F1 for entity F1). Without per-example statistics only seeds are resampled; with one seed and "
    "none, no interval is given.",
    "p-values: two-sided, by inverting the percentile interval "
    "(p < 0.05 exactly when the 95 % CI excludes 0); "
    "Holm's correction across the zero-shot languages of each (target, intermediate) pair. The source "
    "language is in-language, not zero-shot, and is tested on its own.",
    "Relative change: a gain divided by the baseline's headroom to 100, a loss divided by the baseline's "
    "margin above chance (33.3 for 3-way NLI, 0 for F1). Both lie in [-1, 1] and make entity F1 and "
    "accuracy comparable. The NER-vs-NLI verdict is the mean relative change over zero-shot languages; a "
    "target is called more robust when the CI of the NER − NLI difference excludes zero.",
    "Transfer gap: source-language score minus the mean zero-shot score (as in XTREME). "
    "Worst-k mean: mean of "
    "the k lowest zero-shot scores. Seed std: sample standard deviation over seeds. Spearman ρ: rank "
    "correlation between a language's Δ and its baseline score (negative = helps weak languages more).",
    "Checkpoint selection (Keung et al., 2020): the step with the best source-language dev curve versus the "
    "best step of each language's own curve; the loss is what selection by English costs that language.",
]


def build_document(a: Analysis, figures: set[str], title: str) -> list[Block]:
    """The report's blocks; ``figures`` names the figures that could be drawn."""
    info = a.info
    blocks = [Block("h1", title)]
    targets = ", ".join(f"{t} ({info['metrics'].get(t, '?')})" for t in info.get("targets", [])) or "none"
    blocks.append(
        Block(
            "p",
            (
                f"{info.get('n_runs', 0)} finished target runs; targets: {targets}; "
                f"{info.get('n_boot')} bootstrap replicates, random seed {info.get('seed')}; "
                f"baseline '{info.get('baseline')}', source language "
                f"'{info.get('source')}'."
            ),
        )
    )
    blocks += [Block("h2", "Summary"), Block("summary", a.summary)]

    blocks.append(Block("h2", "NER vs NLI"))
    blocks.append(Block("table", table=comparison_view(a)))

    blocks.append(Block("h2", "Per-language effects"))
    blocks.append(Block("table", table=effect_summary_view(a)))
    for target in sorted(set(a.effects["target"])):
        blocks.append(Block("h3", target))
        for stem, caption in (
            ("delta_heatmap", f"{target}: Δ per intermediate task and language (* = significant after Holm)"),
            ("delta_ci", f"{target}: Δ with 95 % CIs per language"),
        ):
            if figure_key(stem, target) in figures:
                blocks.append(Block("image", caption, image=figure_key(stem, target)))
        blocks.append(Block("table", table=effects_pivot_view(a, target)))
    missing = sorted(set(a.robustness["target"]) - set(a.effects["target"]))
    if missing:
        blocks.append(Block("p", f"No effects for {', '.join(missing)}: no baseline to compare with."))

    blocks.append(Block("h2", "Robustness"))
    blocks.append(Block("table", table=robustness_view(a)))
    if figure_key("transfer_gap") in figures:
        blocks.append(
            Block("image", "Transfer gap per setting (lower is better)", image=figure_key("transfer_gap"))
        )
    for target in sorted(set(a.robustness["target"])):
        key = figure_key("seed_spread", target)
        if key in figures:
            blocks.append(
                Block("image", f"{target}: seed standard deviation per zero-shot language", image=key)
            )
        else:
            blocks.append(Block("p", f"{target}: no seed spread to show (a single seed per setting)."))

    blocks.append(Block("h2", "Model selection: English dev vs oracle"))
    if len(a.selection):
        blocks.append(Block("table", table=selection_summary_view(a)))
        for target in sorted(set(a.selection["target"])):
            blocks.append(Block("table", table=selection_pivot_view(a, target)))
    else:
        blocks.append(
            Block("p", "No training curves in the store, so checkpoint selection cannot be examined.")
        )

    blocks.append(Block("h2", "Method"))
    blocks.append(Block("list", items=METHOD_NOTES))
    if a.warnings:
        blocks.append(Block("h2", "Warnings"))
        blocks.append(Block("list", items=list(a.warnings)))
    blocks.append(Block("h2", "Files"))
    blocks.append(Block("list", items=[f"{name}.csv" for name in a.tables()]))
    return blocks
