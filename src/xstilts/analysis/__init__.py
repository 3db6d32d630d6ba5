"""Robustness analysis of zero-shot transfer: does intermediate training help NER or NLI more reliably?

``analyze(expdir)`` reads the experiment's results store (read-only) and returns an
:class:`Analysis`: tidy tables of per-language effects with paired bootstrap CIs, robustness
measures per (target, intermediate setting), English-dev vs oracle checkpoint selection, the
NER-vs-NLI comparison, and a summary text generated from those numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from xstilts.analysis.compare import compare_targets
from xstilts.analysis.data import BASELINE, SOURCE_LANGUAGE, load
from xstilts.analysis.effects import compute_effects
from xstilts.analysis.robustness import language_table, robustness_table
from xstilts.analysis.selection import selection_summary, selection_table
from xstilts.analysis.summary import write_summary

__all__ = ["Analysis", "analyze"]


@dataclass
class Analysis:
    """Everything the report shows; each table is also written as CSV by the report."""

    effects: pd.DataFrame  # per (target, intermediate, language): delta, CI, p, Holm, verdict
    effect_summary: pd.DataFrame  # per (target, intermediate): mean change with CIs, counts
    languages: pd.DataFrame  # per (target, intermediate, language): seed mean / std
    robustness: pd.DataFrame  # per (target, intermediate), baseline included
    selection: pd.DataFrame  # per (target, intermediate, language): English-dev vs oracle
    selection_summary: pd.DataFrame  # per (target, intermediate)
    comparison: pd.DataFrame  # NER vs NLI, per (intermediate, measure)
    summary: str
    info: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Name -> table, in reading order (names are the CSV file stems)."""
        return {
            "comparison": self.comparison,
            "effect_summary": self.effect_summary,
            "effects": self.effects,
            "robustness": self.robustness,
            "languages": self.languages,
            "selection_summary": self.selection_summary,
            "selection": self.selection,
        }


def analyze(
    expdir: str | Path,
    n_boot: int = 2000,
    seed: int = 0,
    k: int = 3,
    alpha: float = 0.05,
    level: float = 0.95,
    ner_target: str = "panx",
    nli_target: str = "xnli",
    source: str = SOURCE_LANGUAGE,
    baseline: str = BASELINE,
) -> Analysis:
    """Analyse one experiment directory; deterministic for a given ``seed``."""
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    data = load(expdir, source=source, baseline=baseline)
    effects = compute_effects(data, n_boot=n_boot, seed=seed, alpha=alpha, level=level, k=k)
    languages = language_table(data)
    robust = robustness_table(data, languages, k=k)
    sel = selection_table(data)
    sel_sum = selection_summary(sel)
    comparison = compare_targets(
        effects.summary,
        robust,
        sel_sum,
        effects.replicates,
        ner=ner_target,
        nli=nli_target,
        baseline=baseline,
        level=level,
    )
    info = {
        "expdir": str(expdir),
        "n_boot": n_boot,
        "seed": seed,
        "k": k,
        "alpha": alpha,
        "level": level,
        "ner_target": ner_target,
        "nli_target": nli_target,
        "source": source,
        "baseline": baseline,
        "metrics": dict(data.metrics),
        "chance": dict(data.chance),
        "targets": data.targets,
        "n_runs": int(data.finals["run_id"].nunique()),
    }
    warnings = list(dict.fromkeys(data.warnings))
    text = write_summary(comparison, effects.summary, info, warnings)
    return Analysis(
        effects=effects.per_language,
        effect_summary=effects.summary,
        languages=languages,
        robustness=robust,
        selection=sel,
        selection_summary=sel_sum,
        comparison=comparison,
        summary=text,
        info=info,
        warnings=warnings,
    )
