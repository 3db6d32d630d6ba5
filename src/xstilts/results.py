"""``xstilts results``: final zero-shot scores per language, as a table and a CSV."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
from rich.table import Table

from xstilts.config import BASELINE
from xstilts.faults import atomic_path
from xstilts.identity import check_store
from xstilts.store import Store

STALE = "stale"  # the mark of a value computed by a stale run (see xstilts.identity)


def stale_runs(expdir: Path) -> dict[str, str]:
    """Run id -> why, for finished runs whose data or starting weights changed since they ran."""
    with Store(expdir, readonly=True) as store:
        return check_store(store).stale


def final_scores(expdir: Path) -> pd.DataFrame:
    """Final (selected-checkpoint) scores of target runs, one row per seed × language × metric;
    column ``stale`` is True for scores of stale runs."""
    with Store(expdir, readonly=True) as store:
        df = store.scores_frame(kind="final")
        primary = store.get_meta("primary_metric", {}) or {}
        stale = check_store(store).stale
    df = df[df["phase"] == "target"].copy()
    df["primary"] = pd.Series([primary.get(t, m) == m for t, m in zip(df["target"], df["metric"], strict=True)],
                              index=df.index, dtype=bool)  # bool even when empty: df[df["primary"]] filters rows
    df["stale"] = df["run_id"].isin(list(stale))
    return df


def nothing_finished(expdir: Path) -> str | None:
    """The line to print where no target run of the store's plan has finished yet (a first run
    interrupted or still in its first run, every run failed): what the runs are doing; else None."""
    with Store(expdir, readonly=True) as store:
        plan = store.current_plan()
        runs = [r for r in store.runs() if r["phase"] == "target" and (plan is None or r["run_id"] in plan)]
        path = store.path
    if any(r["status"] == "done" for r in runs):
        return None
    counts = Counter(r["status"] for r in runs)
    words = {"running": "running or interrupted"}  # a run killed mid-way stays 'running' in the store
    states = ": " + ", ".join(f"{n} {words.get(s, s)}" for s, n in sorted(counts.items())) if runs else ""
    return f"{path}: no target run has finished yet ({len(runs)} target run(s){states}); no scores to show"


def write_results_csv(expdir: Path, path: Path | None = None) -> Path:
    df = final_scores(expdir)
    path = Path(path) if path else Path(expdir) / "results.csv"
    cols = ["intermediate", "target", "language", "metric", "seed", "value", "step", "run_id", "stale"]
    with atomic_path(path) as tmp:  # a failed write (full disk) removes its temp file
        df.sort_values(cols[:5])[cols].to_csv(tmp, index=False, float_format="%.4f")
    return path


def results_table(expdir: Path) -> list[Table]:
    """One table per target: languages as rows, settings as columns, mean ± std over seeds."""
    df = final_scores(expdir)
    df = df[df["primary"]]
    tables = []
    for target, sub in df.groupby("target", sort=True):
        metric = sub["metric"].iloc[0]
        settings = sorted(sub["intermediate"].unique(), key=lambda s: (s != BASELINE, s))
        agg = sub.groupby(["language", "intermediate"])["value"].agg(["mean", "std", "count"])
        stale = sub.groupby(["language", "intermediate"])["stale"].any()
        n_seeds = int(sub.groupby("intermediate")["seed"].nunique().max())
        table = Table(title=f"{target} — {metric} (mean ± std over {n_seeds} seed(s), zero-shot)")
        if stale.any():
            table.caption = (f"'{STALE}' marks values from runs whose data or starting weights changed since "
                             "they ran (`xstilts run CONFIG --rerun-stale` recomputes them)")
        table.add_column("language")
        for s in settings:
            table.add_column(s, justify="right")
        langs = sorted(sub["language"].unique(), key=lambda x: (x != "en", x))
        for lang in langs:
            cells = []
            for s in settings:
                if (lang, s) in agg.index:
                    row = agg.loc[(lang, s)]
                    std = "" if pd.isna(row["std"]) else f" ± {row['std']:.1f}"
                    mark = f" {STALE}" if stale.loc[(lang, s)] else ""
                    cells.append(f"{row['mean']:.1f}{std}{mark}")
                else:
                    cells.append("–")
            table.add_row(lang, *cells)
        non_en = sub[sub["language"] != "en"].groupby(["intermediate", "seed"])["value"].mean()
        means = non_en.groupby("intermediate").mean()
        stale_setting = sub[sub["language"] != "en"].groupby("intermediate")["stale"].any()
        table.add_row("[b]avg (non-en)[/b]", *[f"{means.get(s, float('nan')):.1f}"
                                               f"{f' {STALE}' if stale_setting.get(s, False) else ''}"
                                               for s in settings])
        tables.append(table)
    return tables
