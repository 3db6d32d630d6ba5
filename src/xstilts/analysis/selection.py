"""Model-selection sensitivity: English-dev checkpoint choice vs a per-language oracle.

Keung et al. (2020) showed that zero-shot scores move a lot between checkpoints whose English
dev scores are nearly equal, so a reported effect can partly be a checkpoint-selection effect.
For every run we take the step the pipeline selected (the best score on the *selection half* of
English dev, reproduced from the stored ``select`` curve) and compare each language's score at
that step with the best score that language's own curve reached (an oracle no zero-shot
setting can use). The difference ``loss`` is how much selection by English costs that language.

Why cross-fitted: an oracle that takes the maximum of a noisy curve and is scored on the same
items is optimistic, so its loss is > 0 from noise alone even when every checkpoint is equally
good. The oracle is therefore cross-fitted on the fixed replication halves
(:func:`~xstilts.evaluation.halves.replication_mask`): the step that is best on half A is scored
on half B and vice versa, and the oracle is the mean of those two scores. The selected score is
the mean of the two half scores at the selected step, so on a flat curve ``loss`` averages about
0 (single values can be negative), and when a language really peaks elsewhere it estimates the
cost of selecting by English (slightly conservatively: each half's oracle picks on half the data).
The in-sample oracle is kept as ``oracle_naive`` / ``loss_naive`` for comparison.

Older stores: without per-step per-example rows the in-sample oracle is all there is
(``method`` = ``naive``); without a ``select`` curve English was not held out, and the step is
reproduced from the English ``eval`` curve. Both are said in ``data.warnings``.
"""

from __future__ import annotations

import pandas as pd

from xstilts.analysis.data import ExperimentData, SelectionCurves, language_order

RUN_COLUMNS = [
    "target",
    "intermediate",
    "seed",
    "language",
    "selected_step",
    "selected",
    "oracle_step",  # best step of the language's whole curve (the in-sample oracle's step)
    "oracle",
    "loss",
    "oracle_naive",
    "loss_naive",
    "oracle_step_a",  # best step on replication half A (scored on B)
    "oracle_step_b",  # best step on replication half B (scored on A)
    "method",  # 'crossfit' or 'naive'
]
SELECTION_COLUMNS = [
    "target",
    "intermediate",
    "language",
    "zero_shot",
    "n_seeds",
    "selected_steps",
    "selected",
    "oracle",
    "loss",
    "oracle_naive",
    "loss_naive",
    "method",  # 'crossfit', 'naive' or 'mixed' over the seeds
]
SUMMARY_COLUMNS = [
    "target",
    "intermediate",
    "n_languages",
    "mean_loss",
    "max_loss",
    "max_loss_language",
    "share_with_loss",
    "mean_loss_naive",
    "method",
]


def _best_step(values: pd.Series) -> int:
    """Argmax over steps; ties go to the earliest step, as an early-stopping trainer keeps the first best."""
    return int(values.sort_index().idxmax())


def select_vs_oracle(
    curve: pd.DataFrame,
    source: str = "en",
    *,
    selected_step: int | None = None,
    half_a: pd.DataFrame | None = None,
    half_b: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One run's curve (index: step, columns: language) -> per-language selected vs oracle.

    ``selected_step`` is the step the run chose (default: the best ``source`` step of ``curve``).
    ``half_a`` / ``half_b`` (same shape as ``curve``) are the curve scores on the two replication
    halves; a language present in both, at the selected step, gets the cross-fitted oracle, any
    other language the in-sample one.
    """
    curve = curve.sort_index()
    if selected_step is None:
        if source not in curve.columns or curve[source].dropna().empty:
            return pd.DataFrame(columns=RUN_COLUMNS[3:])
        selected_step = _best_step(curve[source].dropna())
    step = int(selected_step)
    rows = []
    for lang in curve.columns:
        col = curve[lang].dropna()
        if col.empty:
            continue
        at_step = float(curve.at[step, lang]) if step in curve.index else float("nan")
        o_step = _best_step(col)
        row = {
            "language": lang,
            "selected_step": step,
            "oracle_step": o_step,
            "oracle_naive": float(col[o_step]),
            "loss_naive": float(col[o_step]) - at_step,
        }
        crossfit = _crossfit(lang, step, half_a, half_b)
        if crossfit is None:
            row |= {"selected": at_step, "oracle": row["oracle_naive"], "loss": row["loss_naive"],
                    "oracle_step_a": o_step, "oracle_step_b": o_step, "method": "naive"}
        else:
            row |= crossfit
        rows.append(row)
    return pd.DataFrame(rows, columns=RUN_COLUMNS[3:])


def _crossfit(lang: str, step: int, half_a: pd.DataFrame | None, half_b: pd.DataFrame | None) -> dict | None:
    """Selected and cross-fitted oracle scores of one language, or None without both halves at ``step``."""
    if half_a is None or half_b is None or lang not in half_a.columns or lang not in half_b.columns:
        return None
    both = pd.concat({"a": half_a[lang], "b": half_b[lang]}, axis=1).dropna()
    if step not in both.index:
        return None
    a, b = both["a"], both["b"]
    step_a, step_b = _best_step(a), _best_step(b)
    oracle = (float(b[step_a]) + float(a[step_b])) / 2.0
    selected = (float(a[step]) + float(b[step])) / 2.0
    return {"selected": selected, "oracle": oracle, "loss": oracle - selected,
            "oracle_step_a": step_a, "oracle_step_b": step_b, "method": "crossfit"}


def selection_runs(data: ExperimentData, curves: SelectionCurves | None = None) -> pd.DataFrame:
    """:func:`select_vs_oracle` for every run that logged curves.

    ``curves`` (:func:`~xstilts.analysis.data.load_selection_curves`) gives the selection-half
    English curve and the replication-half scores; without it, or for runs it lacks, the
    present-day in-sample comparison is made and ``data.warnings`` says so.
    """
    select = dict(tuple(curves.select.groupby("run_id"))) if curves is not None else {}
    halves = dict(tuple(curves.halves.groupby("run_id"))) if curves is not None else {}
    parts, not_held_out, naive = [], 0, 0
    for (target, inter, seed), sub in data.curves.groupby(["target", "intermediate", "seed"], sort=True):
        run_id = sub["run_id"].iloc[-1]
        curve = sub.pivot_table(index="step", columns="language", values="value", aggfunc="last")
        step = None
        if run_id in select:
            step = _best_step(select[run_id].set_index("step")["value"])
        elif curves is not None:
            not_held_out += 1
        half_a = half_b = None
        if run_id in halves:
            h = halves[run_id]
            half_a = h.pivot_table(index="step", columns="language", values="half_a", aggfunc="last")
            half_b = h.pivot_table(index="step", columns="language", values="half_b", aggfunc="last")
        elif curves is not None:
            naive += 1
        res = select_vs_oracle(curve, data.source, selected_step=step, half_a=half_a, half_b=half_b)
        if res.empty:
            data.warnings.append(
                f"{target}/{inter}/seed {seed}: no '{data.source}' curve, cannot select a step"
            )
            continue
        res.insert(0, "seed", int(seed))
        res.insert(0, "intermediate", inter)
        res.insert(0, "target", target)
        parts.append(res)
    if not_held_out:
        data.warnings.append(
            f"checkpoint selection: {not_held_out} run(s) have no '{data.source}' selection-half curve (older "
            f"store); their step is taken from the reported '{data.source}' curve, so {data.source} was not "
            "held out"
        )
    if naive:
        data.warnings.append(
            f"checkpoint selection: {naive} run(s) have no per-step per-example rows (older store); their "
            "oracle is the in-sample maximum of a noisy curve, so its loss is biased upwards"
        )
    if curves is None and parts:
        data.warnings.append(
            "checkpoint selection: selection-half curves and per-step rows were not read; the step is the "
            f"best reported '{data.source}' step and the oracle is the in-sample maximum (loss biased upwards)"
        )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=RUN_COLUMNS)


def _method(values: pd.Series) -> str:
    kinds = set(values)
    return kinds.pop() if len(kinds) == 1 else "mixed"


def selection_table(data: ExperimentData, curves: SelectionCurves | None = None) -> pd.DataFrame:
    """Per (target, intermediate, language): mean over seeds of selected, oracle and loss."""
    runs = selection_runs(data, curves)
    if runs.empty:
        return pd.DataFrame(columns=SELECTION_COLUMNS)
    rows = []
    for target in sorted(runs["target"].unique()):
        t = runs[runs["target"] == target]
        langs = language_order(t["language"], data.source)
        for inter in data.intermediates(target) or sorted(t["intermediate"].unique()):
            ti = t[t["intermediate"] == inter]
            for lang in langs:
                r = ti[ti["language"] == lang]
                if r.empty:
                    continue
                rows.append(
                    {
                        "target": target,
                        "intermediate": inter,
                        "language": lang,
                        "zero_shot": lang != data.source,
                        "n_seeds": len(r),
                        "selected_steps": "/".join(str(s) for s in r["selected_step"]),
                        "selected": float(r["selected"].mean()),
                        "oracle": float(r["oracle"].mean()),
                        "loss": float(r["loss"].mean()),
                        "oracle_naive": float(r["oracle_naive"].mean()),
                        "loss_naive": float(r["loss_naive"].mean()),
                        "method": _method(r["method"]),
                    }
                )
    return pd.DataFrame(rows, columns=SELECTION_COLUMNS)


def selection_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (target, intermediate): how much English-dev selection costs the zero-shot languages."""
    if table.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    rows = []
    zero_shot = table[table["zero_shot"].astype(bool)]
    for (target, inter), sub in zero_shot.groupby(["target", "intermediate"], sort=False):
        loss = sub.set_index("language")["loss"].dropna()
        naive = sub["loss_naive"].dropna() if "loss_naive" in sub else pd.Series(dtype=float)
        rows.append(
            {
                "target": target,
                "intermediate": inter,
                "n_languages": len(loss),
                "mean_loss": float(loss.mean()) if len(loss) else float("nan"),
                "max_loss": float(loss.max()) if len(loss) else float("nan"),
                "max_loss_language": str(loss.idxmax()) if len(loss) else None,
                "share_with_loss": float((loss > 1e-9).mean()) if len(loss) else float("nan"),
                "mean_loss_naive": float(naive.mean()) if len(naive) else float("nan"),
                "method": _method(sub["method"]) if "method" in sub else "naive",
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
