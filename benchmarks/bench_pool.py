"""The quickstart one run at a time vs ``runtime.parallel_runs = 2``, time-sliced side by side.

Usage: ``python benchmarks/bench_pool.py [--seeds 1] [--slice 5] [--set KEY=VALUE ...] [--json out.json]``

Both sides are ``xstilts run configs/quickstart.toml`` into fresh output directories (the
tokenisation cache is shared and warmed first by neither: whichever side tokenises a file first
writes it, so pass ``--set runtime.cache_dir=...`` of a warm cache for equal footing), run
time-sliced (:func:`bench_train.take_turns`: both start, one runs at a time for ``--slice``
seconds while the other is stopped), so the machine's drift falls on both alike. The one-at-a-time
side has ``threads = 2`` fixed: auto threads would count the other side's turns as load. The
two-at-once side keeps auto threads, which share the cores between its runs and give the last run
both; a check whose window spans a stopped gap can take a thread from it for an interval, a cost to
that side only. Printed: each side's running time and their ratio, and each side's mean final
zero-shot score per (setting, target): thread counts change float rounding, so scores may differ
like another thread count's, within seed noise.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from bench_quickstart import mean_scores
from bench_train import _int_list, take_turns, usage_figures

REPO = Path(__file__).resolve().parents[1]
SIDES = {"one": ["runtime.parallel_runs=1", "runtime.threads=2"], "two": ["runtime.parallel_runs=2"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "quickstart.toml")
    ap.add_argument("--seeds", type=_int_list, default=None)
    ap.add_argument("--slice", type=float, default=5.0)
    ap.add_argument("--set", action="append", default=[], help="a config value for both sides")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    sets = list(args.set) + ([f"seeds={json.dumps(args.seeds)}"] if args.seeds else [])
    cli = str(Path(sys.executable).with_name("xstilts"))
    with tempfile.TemporaryDirectory(prefix="bench-pool-") as tmp:
        work = Path(tmp)
        commands = {side: [cli, "run", str(args.config), "-o", str(work / side),
                           *[a for s in sets + extra for a in ("--set", s)]] for side, extra in SIDES.items()}
        started = time.strftime("%Y-%m-%d %H:%M")
        turns = take_turns(commands, {side: args.slice for side in SIDES},
                           {side: work / f"{side}.log" for side in SIDES}, cwd=REPO)
        res = {"date": started, "sets": sets, "slice_s": args.slice}
        for side in SIDES:
            with sqlite3.connect(work / side / "results.sqlite") as db:
                done = db.execute("SELECT count(*) FROM runs WHERE status = 'done'").fetchone()[0]
            res[side] = {"running_s": sum(b - a for a, b in turns.running[side]), "alone_s": turns.alone_s(side),
                         **usage_figures(turns.usage[side]), "runs_done": done,
                         "mean_zero_shot": mean_scores(work / side), "sets": SIDES[side]}
    res["ratio"] = res["one"]["running_s"] / res["two"]["running_s"]
    print(f"{res['date']}; time-sliced, {args.slice:g}-s turns; {' '.join(sets) or 'the config as it is'}")
    print()
    print("| side | runs | running time | of it alone at the end | CPU time | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for side, name in (("one", "one run at a time, 2 threads"), ("two", "two runs at once (parallel_runs = 2)")):
        r = res[side]
        print(f"| {name} | {r['runs_done']} | {r['running_s']:.0f} s | {r['alone_s']:.0f} s | {r['cpu_s'] / 60:.1f} min "
              f"| {r['peak_rss_mb']:.0f} |")
    print(f"| **one at a time / two at once** | | **{res['ratio']:.2f}×** | | | |")
    print()
    for key in res["one"]["mean_zero_shot"]:
        print(f"- {key}: mean zero-shot {res['one']['mean_zero_shot'][key]:.2f} (one at a time) vs "
              f"{res['two']['mean_zero_shot'].get(key, float('nan')):.2f} (two at once)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
