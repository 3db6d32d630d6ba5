"""NER vs NLI: the verdict follows the data, and the summary text follows the verdict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from xstilts.analysis import analyze
from xstilts.analysis.compare import MEASURES, compare_targets


def _primary(a) -> pd.Series:
    return a.comparison[a.comparison["primary"]].set_index("intermediate").loc["mnli"]


def test_opposite_stores_give_opposite_answers(helps_ner: Path, helps_nli: Path) -> None:
    a, b = analyze(helps_ner, n_boot=300), analyze(helps_nli, n_boot=300)
    pa, pb = _primary(a), _primary(b)
    assert pa["favours"] == "NER" and pa["confident"] and pa["diff_ci_lo"] > 0
    assert pb["favours"] == "NLI" and pb["confident"] and pb["diff_ci_hi"] < 0

    answer_a = next(line for line in a.summary.splitlines() if line.startswith("Answer:"))
    answer_b = next(line for line in b.summary.splitlines() if line.startswith("Answer:"))
    assert "more robust for NER than for NLI under mnli" in answer_a
    assert "more robust for NLI than for NER under mnli" in answer_b
    assert answer_a != answer_b

    # the per-target numbers in the text are the table's numbers
    s = a.effect_summary.set_index("target")
    assert f"{s.loc['panx', 'mean_delta']:+.1f}".replace("-", "−") in a.summary
    assert s.loc["panx", "mean_delta"] > 0 > s.loc["xnli", "mean_delta"]
    assert s.loc["xnli", "hurt"] > 0 and s.loc["panx", "improved"] > 0


def test_every_measure_is_compared(helps_ner: Path) -> None:
    a = analyze(helps_ner, n_boot=200)
    rows = a.comparison[a.comparison["intermediate"] == "mnli"]
    assert list(rows["measure"]) == [m.key for m in MEASURES]
    favours = rows.set_index("measure")["favours"]
    assert favours["share_hurt"] in {"NER", "tie"} and favours["mean_delta"] == "NER"
    assert favours["spearman_rho"] == "n/a"  # descriptive, no direction


def test_undecided_when_the_interval_includes_zero() -> None:
    summary = pd.DataFrame(
        [
            {
                "target": t,
                "intermediate": "mnli",
                "mean_rel": v,
                "mean_rel_lo": np.nan,
                "mean_rel_hi": np.nan,
                "mean_delta": 1.0,
                "mean_delta_lo": np.nan,
                "mean_delta_hi": np.nan,
                "worst_rel": 0.0,
                "worst_k_rel": 0.0,
                "share_hurt": 0.0,
                "share_improved": 0.0,
                "rel_std": 0.1,
                "gap_change": 0.0,
                "gap_change_lo": np.nan,
                "gap_change_hi": np.nan,
            }
            for t, v in (("panx", 0.10), ("xnli", 0.08))
        ]
    )
    robust = pd.DataFrame(columns=["target", "intermediate", "avg_seed_std", "spearman_rho"])
    selection = pd.DataFrame(columns=["target", "intermediate", "mean_loss"])
    rng = np.random.default_rng(0)
    reps = {
        ("panx", "mnli"): {"mean_rel": rng.normal(0.10, 0.05, 500)},
        ("xnli", "mnli"): {"mean_rel": rng.normal(0.08, 0.05, 500)},
    }
    out = compare_targets(summary, robust, selection, reps).set_index("measure")
    assert out.loc["mean_rel", "favours"] == "neither" and out.loc["mean_rel", "diff_ci_lo"] < 0
    # without replicates the call falls back to the point estimate, flagged as not confident
    out = compare_targets(summary, robust, selection, {}).set_index("measure")
    assert out.loc["mean_rel", "favours"] == "NER" and not out.loc["mean_rel", "confident"]
