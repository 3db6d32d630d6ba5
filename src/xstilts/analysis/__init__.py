"""Robustness analysis of zero-shot transfer: does intermediate training help NER or NLI more reliably?

``analyze(expdir)`` reads the experiment's results store (read-only) and returns an
:class:`Analysis`: per-language effects and per-measure effects (transfer ratio, worst language,
spread, gap, zero-shot mean, English) with intervals that count training seeds and test items
(:mod:`.inference`), power figures (:mod:`.power`), the NER-vs-NLI comparison with split-half
replication (:mod:`.compare`), English-dev vs oracle checkpoint selection (:mod:`.selection`), the
four selection strategies (English dev, k-shot, weight averaging, oracle) on common items
(:mod:`.strategies`), a summary text generated from those numbers (:mod:`.summary`), and how the
analysed runs were computed: precision, thread counts (:mod:`.computation`). ``docs/statistics.md`` reports how
well the intervals cover known effects in simulation (:mod:`.calibration`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from xstilts.analysis.compare import compare_targets, replicate_halves
from xstilts.analysis.computation import computation_notes
from xstilts.analysis.data import BASELINE, SOURCE_LANGUAGE, load, load_selection_curves
from xstilts.analysis.effects import compute_effects
from xstilts.analysis.intermediate import intermediate_table
from xstilts.analysis.robustness import language_table, robustness_table
from xstilts.analysis.selection import selection_summary, selection_table
from xstilts.analysis.strategies import ALL_STRATEGIES, DEFAULT_K_SHOT, most_stable_text, strategy_tables
from xstilts.analysis.summary import write_summary
from xstilts.store import Store

__all__ = ["Analysis", "analyze"]


@dataclass
class Analysis:
    """Everything the report shows; each table is also written as CSV by the report."""

    effects: pd.DataFrame  # per (target, intermediate, language): delta, CI, p, Holm, verdict
    measures: pd.DataFrame  # per (target, intermediate, measure): delta, CI, p, power
    effect_summary: pd.DataFrame  # per (target, intermediate): languages improved / hurt, worst, seed spread
    languages: pd.DataFrame  # per (target, intermediate, language): seed mean / std
    robustness: pd.DataFrame  # per (target, intermediate), baseline included (descriptive)
    selection: pd.DataFrame  # per (target, intermediate, language): English-dev vs oracle
    selection_summary: pd.DataFrame  # per (target, intermediate)
    comparison: pd.DataFrame  # NER vs NLI, per (intermediate, measure)
    replication: pd.DataFrame  # the primary comparison on each replication half
    summary: str
    info: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # selection strategies (English dev, k-shot per k, averaging, oracle) on common items (.strategies)
    strategies: pd.DataFrame = field(default_factory=pd.DataFrame)  # per (target, intermediate, language, strategy)
    strategy_summary: pd.DataFrame = field(default_factory=pd.DataFrame)  # per (target, intermediate, strategy)
    strategy_answer: pd.DataFrame = field(default_factory=pd.DataFrame)  # NER vs NLI under each strategy
    intermediate: pd.DataFrame = field(default_factory=pd.DataFrame)  # phase 2's dev score per (setting, task, seed)
    computation: list[str] = field(default_factory=list)  # precision and thread counts of the analysed runs

    def tables(self) -> dict[str, pd.DataFrame]:
        """Name -> table, in reading order (names are the CSV file stems)."""
        return {
            "comparison": self.comparison,
            "replication": self.replication,
            "measures": self.measures,
            "effect_summary": self.effect_summary,
            "effects": self.effects,
            "robustness": self.robustness,
            "languages": self.languages,
            "selection_summary": self.selection_summary,
            "selection": self.selection,
            "strategy_summary": self.strategy_summary,
            "strategy_answer": self.strategy_answer,
            "strategies": self.strategies,
            "intermediate": self.intermediate,
        }


def analyze(
    expdir: str | Path,
    n_boot: int = 1000,
    seed: int = 0,
    k: int = 3,
    alpha: float = 0.05,
    ner_target: str = "panx",
    nli_target: str = "xnli",
    source: str = SOURCE_LANGUAGE,
    baseline: str = BASELINE,
    with_selection: bool = True,
    k_shot: tuple[int, ...] | None = None,
) -> Analysis:
    """Analyse one experiment directory; deterministic for a given ``seed``.

    ``k_shot`` (default: the config's ``[target.selection] k_shot`` as stored, else 10, 50, 100) and
    the config's ``strategies`` set which selection strategies are compared.
    """
    if n_boot < 10:
        raise ValueError("n_boot must be at least 10 (the item variance is estimated from the replicates)")
    data = load(expdir, source=source, baseline=baseline)
    effects = compute_effects(data, n_boot=n_boot, seed=seed, alpha=alpha)
    settings = sorted({i for t in data.targets for i in data.intermediates(t)})
    comparison = compare_targets(effects.scores, settings, ner_target, nli_target, baseline, alpha)
    replication = replicate_halves(effects.scores, settings, ner_target, nli_target, baseline, alpha, n_boot, seed)
    languages = language_table(data)
    robust = robustness_table(data, languages, k=k)
    curves = load_selection_curves(expdir, data) if with_selection else None
    sel = selection_table(data, curves) if with_selection else pd.DataFrame()
    sel_sum = selection_summary(sel) if with_selection else pd.DataFrame()
    with Store(expdir, readonly=True) as store:
        chosen = ((store.get_meta("config") or {}).get("target") or {}).get("selection") or {}
        rows = store.runs()
        phase2 = intermediate_table(store.scores_frame())
    analysed = set(data.finals["run_id"])
    analysed |= {r["parent_run"] for r in rows if r["run_id"] in analysed and r.get("parent_run")}
    computation, computation_warnings = computation_notes(r for r in rows if r["run_id"] in analysed)
    if k_shot is None:
        k_shot = tuple(chosen.get("k_shot") or DEFAULT_K_SHOT)
    # English dev is the reference of every comparison; averaged rows, where runs stored them, are shown
    strategies = tuple(dict.fromkeys(("english", *(chosen.get("strategies") or ALL_STRATEGIES), "average")))
    if with_selection:
        strat, strat_sum, strat_ans = strategy_tables(expdir, data, curves, k_shot, strategies, n_boot, seed, alpha,
                                                      ner_target, nli_target)
    else:
        strat = strat_sum = strat_ans = pd.DataFrame()
    info = {
        "expdir": str(expdir),
        "n_boot": n_boot,
        "seed": seed,
        "k": k,
        "alpha": alpha,
        "ner_target": ner_target,
        "nli_target": nli_target,
        "source": source,
        "baseline": baseline,
        "metrics": dict(data.metrics),
        "chance": dict(data.chance),
        "targets": data.targets,
        "n_runs": int(data.finals["run_id"].nunique()),
        "stale": dict(data.stale),
    }
    warnings = list(dict.fromkeys(data.warnings + computation_warnings))
    info["k_shot"] = list(k_shot)
    text = write_summary(comparison, replication, effects.measures, effects.summary, info, warnings)
    stable = most_stable_text(strat_ans) if len(strat_ans) else None
    if stable:
        text = f"{text.rstrip()}\n\n{stable}."
    return Analysis(
        effects=effects.per_language,
        measures=effects.measures,
        effect_summary=effects.summary,
        languages=languages,
        robustness=robust,
        selection=sel,
        selection_summary=sel_sum,
        comparison=comparison,
        replication=replication,
        summary=text,
        info=info,
        warnings=warnings,
        strategies=strat,
        strategy_summary=strat_sum,
        strategy_answer=strat_ans,
        computation=computation,
        intermediate=phase2,
    )
