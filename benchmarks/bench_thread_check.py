"""Auto threads' first check beside a moment's work of another process, and beside a lasting one.

Usage::

    python benchmarks/bench_thread_check.py                 # 10 trials of each condition
    python benchmarks/bench_thread_check.py --trials 20 --burst 0.2

Each trial starts another Python process that keeps one core busy (nice 0, this session: it
competes), then takes a fresh auto-thread decision (:func:`xstilts.training.speed.decide_threads`)
as at the start of a run, with 2 threads to lose:

- ``burst``: the other process works ``--burst`` CPU seconds and exits, as a short command does
  (the case of the quickstart of 2026-12-01 19:42, whose first 0.25-s check read 0.69 busy cores);
- ``lasting``: it works for the whole check (what a competitor looks like).

Printed per condition: how often the first 0.25-s reading alone would have taken a thread (the
rule before confirmation), how often the decision did (the first reading confirmed over a fresh
second), and the readings' medians. Both come from the same checks, so the comparison is side by
side. Needs Linux ``/proc`` and at least 2 cores; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

from xstilts.config import RuntimeConfig
from xstilts.training import speed

BURN = "import sys, time\nt = time.process_time()\nwhile time.process_time() - t < float(sys.argv[1]): pass\n"


def trial(burn_s: float) -> speed.ThreadChoice:
    """One fresh decision, started just after another process begins to burn ``burn_s`` CPU seconds."""
    speed._last_reading = None  # a fresh window, as at the start of a process
    torch.set_num_threads(2)
    other = subprocess.Popen([sys.executable, "-c", BURN, str(burn_s)])
    try:
        time.sleep(0.05)  # past its interpreter's start-up, so the window sees the work itself
        return speed.decide_threads(RuntimeConfig())
    finally:
        other.kill()
        other.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--burst", type=float, default=0.2, help="CPU seconds of the short process")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        raise SystemExit("bench_thread_check: needs at least 2 cores to have a thread to lose")
    speed._initial_threads = 2
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M')}")
    print("| condition | trials | first reading would drop | decision dropped | first reading median "
          "| confirming reading median |")
    print("|---|---|---|---|---|---|")
    for name, burn in [("burst", args.burst), ("lasting", 5.0)]:
        choices = [trial(burn) for _ in range(args.trials)]
        first = [c.first_reading if c.first_reading is not None else c.other_cores for c in choices]
        second = [c.other_cores for c in choices if c.first_reading is not None]
        would = sum(speed._threads_for(f, cores, 2) < 2 for f in first)  # the rule without confirmation
        dropped = sum(c.threads < 2 for c in choices)
        second_median = f"{statistics.median(second):.2f}" if second else "—"
        print(f"| {name} ({burn:g} s) | {len(choices)} | {would} | {dropped} | {statistics.median(first):.2f} "
              f"| {second_median} |")


if __name__ == "__main__":
    main()
