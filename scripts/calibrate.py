"""Calibration of the analysis: simulated experiments with known effects, through ``analyze``.

    .venv/bin/python scripts/calibrate.py --n 200 --out docs/calibration

writes ``calibration-runs.csv`` (one row per simulated experiment) and ``calibration.md`` (the table
of docs/statistics.md) under ``--out``. See :mod:`xstilts.analysis.calibration` for the scenarios.

    .venv/bin/python scripts/calibrate.py --strategies --n 200 --out docs/calibration

calibrates the checkpoint-selection strategies instead (:mod:`xstilts.analysis.strategy_calibration`):
``strategy-calibration-runs.csv`` (one row per experiment and strategy) and ``strategy-calibration.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from xstilts.analysis import strategy_calibration
from xstilts.analysis.calibration import run_scenario, scenarios, summarise


def markdown(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if isinstance(v, float) and not np.isfinite(v):
                cells.append("–")
            else:
                cells.append(f"{v:.1%}" if isinstance(v, float) and c not in ("true NER − NLI (pp)",) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="simulated experiments per scenario")
    ap.add_argument("--n-boot", type=int, default=200, help="item resamples per analysis")
    ap.add_argument("--only", nargs="*", help="scenario names to run (default: all)")
    ap.add_argument("--skip", nargs="*", default=[], help="scenario names not to run")
    ap.add_argument("--sizes", nargs="*", help="design sizes to run (default: all)")
    ap.add_argument("--strategies", action="store_true",
                    help="calibrate the checkpoint-selection strategy comparison instead of the main analysis")
    ap.add_argument("--out", type=Path, default=Path("docs/calibration"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.strategies:
        all_scenarios, run, summ = (strategy_calibration.scenarios(), strategy_calibration.run_strategy_scenario,
                                    strategy_calibration.summarise_strategies)
        stem = "strategy-calibration"
    else:
        all_scenarios, run, summ, stem = scenarios(), run_scenario, summarise, "calibration"
    frames, started = [], time.perf_counter()
    for sc in all_scenarios:
        if (args.only and sc.name not in args.only) or sc.name in args.skip:
            continue
        if args.sizes and sc.size not in args.sizes:
            continue
        t = time.perf_counter()
        frames.append(run(sc, args.n, n_boot=args.n_boot))
        print(f"{sc.name} ({sc.size}): {time.perf_counter() - t:.0f} s", flush=True)
        runs = pd.concat(frames, ignore_index=True)
        runs.to_csv(args.out / f"{stem}-runs.csv", index=False)  # after every scenario: a kill loses one
    table = summ(runs)
    head = (f"{args.n} simulated experiments per scenario, {args.n_boot} item resamples each; "
            f"{date.today()}, {platform.machine()} {platform.python_version()}, "
            f"{time.perf_counter() - started:.0f} s, load average at the end {os.getloadavg()[0]:.2f}.\n\n")
    (args.out / f"{stem}.md").write_text(head + markdown(table) + "\n", encoding="utf-8")
    print(head + markdown(table))


if __name__ == "__main__":
    main()
