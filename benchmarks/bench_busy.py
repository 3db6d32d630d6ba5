"""An experiment beside a ``nice -19`` busy loop: do auto threads take the core it yields?

Usage::

    python benchmarks/bench_busy.py                                   # quickstart, seed 1
    python benchmarks/bench_busy.py --set 'target.tasks=["panx"]'     # a shorter grid
    python benchmarks/bench_busy.py --conditions alone,niced          # pick the conditions
    python benchmarks/bench_busy.py --conditions alone,niced --rounds 2   # alone, niced, niced, alone

Each condition runs ``xstilts run CONFIG --set seeds=[1] ...`` from an empty output directory, one
after the other, with one tokenisation cache (``--cache-dir``, kept between invocations: run the
script once at a small size to fill it, or the first condition also pays for tokenising):

- ``alone``: nothing else started by this script;
- ``niced``: a ``nice -n 19`` Python busy loop started from this script's session (same autogroup
  as the run: the kernel gives the run nearly all of a core the loop would like, so auto threads
  should choose 2 threads on 2 idle cores);
- ``niced-other-session``: the same loop in a new session (``setsid``). With the kernel's autogroup
  on, a session competes as a whole whatever its nice value, so the loop keeps its core and
  auto threads should choose 1; with autogroup off it yields like ``niced``;
- ``niced-2threads``: as ``niced`` but with ``runtime.threads = 2`` fixed (what auto should match).

Printed per condition: wall time, the loop's CPU share (its CPU seconds / wall seconds), the thread
counts the runs' auto-thread checks chose (``runs.extra.speed.thread_log``), and the mean training
real tokens/s. The load average before each condition is printed too: other load on the machine
changes every figure here, so run it on an otherwise idle machine.

With ``--rounds N`` the conditions run N times, in reverse order every other round (ABBA...), so
that a machine whose speed drifts over the hour (the 2-core benchmark machine's does, by up to
2.4×) weighs on every condition alike; each condition's median wall time and its ratio to
``alone``'s are printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from xstilts.training.speed import _autogroup_enabled, _stat_fields

REPO = Path(__file__).resolve().parents[1]
LOOP = [sys.executable, "-c", "while True: pass"]


def _cpu_seconds(pid: int) -> float:
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_condition(name: str, args: argparse.Namespace, workdir: Path, label: str) -> dict[str, object]:
    """One ``xstilts run`` under condition ``name`` (into ``workdir/label``); what it chose and how fast it went."""
    out_dir = workdir / label
    cmd = [sys.executable, "-m", "xstilts.cli", "run", str(args.config), "--output-dir", str(out_dir),
           "--set", f"seeds=[{args.seed}]", "--set", "runtime.progress=false",
           "--set", f"runtime.cache_dir={json.dumps(str(args.cache_dir))}"]
    for extra in args.set:
        cmd += ["--set", extra]
    if name == "niced-2threads":
        cmd += ["--set", "runtime.threads=2"]
    loop = None
    if name.startswith("niced"):
        # niced before exec (preexec_fn), so no check can see it at nice 0
        loop = subprocess.Popen(LOOP, preexec_fn=lambda: os.nice(19),
                                start_new_session=name == "niced-other-session")
    load_before = os.getloadavg()
    start = time.monotonic()
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
        wall = time.monotonic() - start
        loop_share = _cpu_seconds(loop.pid) / wall if loop is not None else None
    finally:
        if loop is not None:
            loop.kill()
            loop.wait()
    if proc.returncode != 0:
        raise SystemExit(f"{name}: xstilts run failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    with sqlite3.connect(out_dir / "results.sqlite") as db:
        extras = [json.loads(e) for (e,) in db.execute("SELECT extra FROM runs WHERE status = 'done'")]
    choices = Counter(entry[1] for e in extras for entry in e["speed"]["thread_log"])
    rates = [e["train_tokens_per_s"] for e in extras if e.get("train_tokens_per_s")]
    return {"condition": name, "round": label, "wall_s": round(wall, 1), "loop_cpu_share": loop_share, "runs": len(extras),
            "thread_choices": dict(sorted(choices.items())),
            "train_tokens_per_s": round(sum(rates) / len(rates), 1) if rates else None,
            "load_before": [round(x, 2) for x in load_before]}


def markdown(rows: list[dict[str, object]]) -> str:
    lines = ["| run | wall s | loop's CPU share | auto-thread choices (threads: checks) | train tokens/s "
             "| load before |", "|---|---|---|---|---|---|"]
    for r in rows:
        share = "—" if r["loop_cpu_share"] is None else f"{100 * r['loop_cpu_share']:.0f} %"
        lines.append(f"| {r['round']} | {r['wall_s']} | {share} | {r['thread_choices']} "
                     f"| {r['train_tokens_per_s']} | {r['load_before']} |")
    return "\n".join(lines)


def schedule(names: list[str], rounds: int) -> list[tuple[str, str]]:
    """(condition, directory label) in the order they run: every other round reversed (ABBA...)."""
    if rounds == 1:
        return [(name, name) for name in names]
    order = []
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            order.append((name, f"{name}-{r + 1}"))
    return order


def summary(rows: list[dict[str, object]]) -> str:
    """Each condition's median wall time over its rounds, and that as a ratio to ``alone``'s."""
    walls: dict[str, list[float]] = {}
    for r in rows:
        walls.setdefault(str(r["condition"]), []).append(float(r["wall_s"]))
    medians = {name: statistics.median(w) for name, w in walls.items()}
    lines = ["| condition | rounds | median wall s | / alone |", "|---|---|---|---|"]
    for name, med in medians.items():
        ratio = f"{med / medians['alone']:.3f}×" if "alone" in medians else "—"
        lines.append(f"| {name} | {len(walls[name])} | {med:.1f} | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "quickstart.toml")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], help="extra `xstilts run --set` values (repeatable)")
    ap.add_argument("--conditions", default="alone,niced,niced-other-session",
                    help="comma list of alone, niced, niced-other-session, niced-2threads")
    ap.add_argument("--rounds", type=int, default=1, help="run the conditions N times, alternating their order")
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "xstilts-bench-cache")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--keep-dir", type=Path, default=None,
                    help="write each condition's experiment to KEEP_DIR/CONDITION and keep it (scores, timings)")
    args = ap.parse_args()
    names = [c.strip() for c in args.conditions.split(",") if c.strip()]
    unknown = set(names) - {"alone", "niced", "niced-other-session", "niced-2threads"}
    if unknown:
        raise SystemExit(f"unknown condition(s): {', '.join(sorted(unknown))}")
    if args.rounds < 1:
        raise SystemExit(f"--rounds must be at least 1, got {args.rounds}")
    groups = "on" if _autogroup_enabled() else "off"
    print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, autogroup {groups}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}; config {args.config.name}, seed {args.seed}, set {args.set}",
          flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="xstilts-busy-") as tmp:
        root = args.keep_dir or Path(tmp)
        for name, label in schedule(names, args.rounds):
            if (root / label).exists():
                raise SystemExit(f"{root / label} exists: each condition starts from an empty directory")
            rows.append(run_condition(name, args, root, label))
            print(json.dumps(rows[-1]), flush=True)
    print(markdown(rows))
    if args.rounds > 1:
        print()
        print(summary(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
