"""A whole study, two ways: ``xstilts run`` vs a plain script of Hugging Face ``Trainer`` calls.

Usage::

    python benchmarks/bench_study.py                                  # configs/quickstart.toml, whole grid
    python benchmarks/bench_study.py --seeds 1 --languages en,de,sw --scale 0.5 --json study.json
    python benchmarks/bench_study.py --combine s1.json s2.json       # scores of separate seeds, together

What is compared: the quickstart grid (intermediate settings none and sick, targets PAN-X and XNLI,
every language evaluated at every evaluation step, checkpoint chosen on English dev), run

(a) by ``xstilts run CONFIG`` into a fresh output directory (so an empty tokenisation cache), with
    the default ``RuntimeConfig``;
(b) by ``benchmarks/trainer_grid.py``: what a competent user writes with the ``Trainer`` for the
    same grid (see its docstring): same examples, same hyperparameters, same evaluation steps,
    selection half and patience, same metric code.

Both read the same TOML with the same ``--set`` assignments, so a shrunk grid (``--seeds``,
``--languages``, ``--scale``, ``--set``) is the same on both sides. Each side is one child process,
timed by wall clock from start to exit (imports, tokenisation, model loads, training, evaluation
and saving all count, as they do for a user), one after the other; the machine's 1-minute load
average is sampled every 5 s during each (it includes the side itself: about its thread count),
so a side slowed by other work shows it. Scores: per (setting, target) the mean over seeds of the
final zero-shot score (mean over non-English languages) and of English (report half), per side,
and their difference, judged against seed noise: the two sides train different random streams,
so they agree when the difference is within ``t(0.975, n - 1) * sqrt(s_a²/n_a + s_b²/n_b)``
(Welch's standard error, the smaller side's degrees of freedom: needs two or more seeds). Why
not "2 SE": with 2 seeds a side, 2 pooled SE called equal sides different in 18 % of simulated
null experiments (``--calibrate``); this rule in at most 5 %, whatever the ratio of the spreads.

``--slice S`` runs the two sides *time-sliced* instead of one after the other: both start, and
only one runs at a time, for S seconds, while the other is stopped (SIGSTOP/SIGCONT to its process
group), until both have finished. A side's wall time is then the time it was running, so a machine
whose speed drifts (on 2026-12-01 one 2-core machine ran the same run 1.8× slower a quarter of an
hour later) slows both sides alike. Each run's time is its running time between its start and end
stamps; its training and evaluation seconds, which the runs measure themselves, are scaled by the
same share (an estimate). When one side has finished, the other runs alone to its end (reported
as its ``alone_s``): ``--hf-slice T`` gives the Trainer side turns of T seconds instead, and with
T/S near the expected ratio of the sides' times both finish at about the same moment, so that none
of either side runs unsliced; the ratio itself is of running times whatever T is. Give both
sides fixed ``--threads``: auto threads would count the stopped gaps as load.

``--xs-parallel N`` runs the xstilts side with the Ray executor on a local instance of N CPUs, one
CPU per run, so N runs of the grid (seeds, settings, targets whose phase 2 is done) train at once,
each on one thread, instead of one run at a time on all cores; the Trainer side is unchanged. The
CPU time then counts only what the driver reaps (Ray's workers are not its children), so it reads low.

``--xs-runs N`` runs the xstilts side with ``runtime.parallel_runs = N`` (executors/pool.py): N runs
at once in worker processes of the one ``xstilts run``, their auto threads sharing the cores; the
workers are in the side's process group, so ``--slice`` stops them with it. Leave ``--threads``
out then (the Trainer side keeps PyTorch's default, a thread per core): a fixed count would give
every run that many. Under ``--slice`` an auto-thread check whose window spans a stopped gap counts
the other side's turn as load and may take a thread from a run for an interval: a cost to the
xstilts side only.

``--hf-runs N`` is the same idea done by hand on the Trainer side: ``trainer_grid.py --processes N``
splits the seeds over N copies of the script started at once, each on its share of the cores.

``--scale F`` multiplies every phase's ``max_train_examples`` and ``max_eval_examples`` (a cap of
"none" counts the English set) and ``eval_every`` by F (at least 1), so a shrunk grid still
evaluates about as often per epoch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from statistics import fmean, variance
from typing import Any

# benchmarks run as scripts: their folder is on sys.path
from bench_train import WorkerFailed, _int_list, _overlap, take_turns, usage_figures

REPO = Path(__file__).resolve().parents[1]
SIDES = {"xs": "xstilts run", "hf": "HF Trainer script"}


def side_label(side: str, res: dict[str, Any]) -> str:
    """A side's name in the output; the xstilts side says when it ran runs in parallel."""
    if side == "xs" and res.get("xs_parallel"):
        return f"xstilts run, {res['xs_parallel']} runs at once (Ray)"
    if side == "hf" and res.get("hf_runs"):
        return f"HF Trainer script, seeds split over {res['hf_runs']} processes at once"
    if side == "xs" and res.get("xs_runs"):
        return f"xstilts run, {res['xs_runs']} runs at once (parallel_runs)"
    return SIDES[side]


# ------------------------------------------------------------------------------------------ grid

def _count(task_name: str, split: str, data_dir: Path) -> int:
    from xstilts.tasks import get_task

    return len(get_task(task_name, data_dir=data_dir).load(split, "en"))


def scale_sets(config: Path, sets: list[str], scale: float, data_dir: Path) -> list[str]:
    """``--set`` assignments that scale each phase's example caps and evaluation interval by ``scale``."""
    from xstilts.config import BASELINE, load_config, setting_tasks
    from xstilts.tasks.base import EVAL_SPLIT

    cfg = load_config(config, sets)
    inter = sorted({t for s in cfg.intermediate.settings if s != BASELINE for t in setting_tasks(s)})
    plain_targets = [t for t in cfg.target.tasks if t not in cfg.target.overrides]
    phases = [("intermediate.train", cfg.intermediate.train, inter),
              ("target.train", cfg.target.train, plain_targets),
              *[(f"target.overrides.{t}", hp, [t]) for t, hp in cfg.target.overrides.items()]]
    out = []
    for prefix, hp, tasks in phases:
        if not tasks:
            continue
        for key, split in (("max_train_examples", "train"), ("max_eval_examples", EVAL_SPLIT)):
            cap = getattr(hp, key)
            if cap is None:  # "none": the whole set, which only one task can stand for
                if len(tasks) > 1:
                    raise SystemExit(f"--scale: {prefix}.{key} is 'none' for {tasks}; set it explicitly")
                cap = _count(tasks[0], split, data_dir)
            out.append(f"{prefix}.{key}={max(1, round(cap * scale))}")
        if hp.eval_every is not None:
            out.append(f"{prefix}.eval_every={max(1, round(hp.eval_every * scale))}")
    return out


def grid_sets(args: argparse.Namespace) -> list[str]:
    """Every ``--set`` both sides get: the user's, then seeds, languages, threads, scale."""
    sets = list(args.set)
    if args.seeds:
        sets.append(f"seeds={json.dumps(args.seeds)}")
    if args.languages:
        sets.append(f"target.languages={json.dumps(args.languages.split(','))}")
    if args.threads:
        sets.append(f"runtime.threads={args.threads}")
    if args.scale != 1.0:
        sets += scale_sets(args.config, sets, args.scale, args.data_dir)
    return sets


# ------------------------------------------------------------------------------------------ sides

def _sample_loads(loads: list[float], done: threading.Event) -> None:
    """Append the 1-minute load average every 5 s until ``done`` is set."""
    while not done.wait(5.0):
        loads.append(os.getloadavg()[0])


def _steal_jiffies() -> tuple[int, int] | None:
    """(stolen, all) CPU jiffies since boot from ``/proc/stat``'s first line; None where it has none."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(v) for v in fh.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError):
        return None
    return (fields[7], sum(fields)) if len(fields) == 8 else None


@contextlib.contextmanager
def sampled_load() -> Iterator[dict[str, float]]:
    """The 1-minute load average before the block (``load_before``) and, sampled every 5 s during it,
    its mean and maximum (``load_mean``, ``load_max``), and the share of CPU time the hypervisor stole
    over it (``steal``, where ``/proc/stat`` tells): filled in when the block ends."""
    stats, loads, done = {"load_before": os.getloadavg()[0]}, [], threading.Event()
    steal_before = _steal_jiffies()
    sampler = threading.Thread(target=_sample_loads, args=(loads, done), daemon=True)
    sampler.start()
    try:
        yield stats
    finally:
        done.set()
        sampler.join()
        before = stats["load_before"]
        stats.update(load_mean=fmean(loads) if loads else before, load_max=max(loads, default=before))
        steal_after = _steal_jiffies()
        if steal_before and steal_after and steal_after[1] > steal_before[1]:
            stats["steal"] = (steal_after[0] - steal_before[0]) / (steal_after[1] - steal_before[1])


def run_side(name: str, cmd: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run ``cmd`` to its exit; wall time, CPU time and peak RSS (wait4), load average during it."""
    with sampled_load() as load:
        t0 = time.monotonic()
        with open(log, "w", encoding="utf-8") as fh:
            proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO)
            _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed:\n{log.read_text(encoding='utf-8')[-3000:]}")
    return {"wall_s": wall, **usage_figures(usage), **load}


def run_sliced(commands: dict[str, list[str]], env: dict[str, str], logs: dict[str, Path],
               slices: dict[str, float]) -> tuple[dict[str, dict[str, Any]], dict[str, list[tuple[float, float]]]]:
    """Run the sides time-sliced (:func:`bench_train.take_turns`, ``slices[side]`` seconds a turn).

    Returns per side what :func:`run_side` does, with ``wall_s`` the time the side was running and
    ``alone_s`` how much of it came after the other side had finished (no longer sliced against it),
    and the epoch intervals in which each side ran (for :func:`active_times`: the runs' own stamps
    are epoch times). The load figures are the whole sliced run's, the same for both sides.
    """
    try:
        with sampled_load() as load:
            turns = take_turns(commands, slices, logs, clock=time.time, env=env, cwd=REPO)
    except WorkerFailed as e:
        raise SystemExit(f"{side_label(e.name, {})} failed:\n{logs[e.name].read_text(encoding='utf-8')[-3000:]}") from None
    out = {side: {"wall_s": sum(b - a for a, b in turns.running[side]), "alone_s": turns.alone_s(side),
                  **usage_figures(turns.usage[side]), **load} for side in commands}
    return out, turns.running


def active_times(records: list[dict[str, Any]], running: list[tuple[float, float]]) -> None:
    """Replace each run's wall time by the time its side was running between the run's start and end
    stamps, and scale its training and evaluation seconds by the same share (measured inside the run)."""
    for r in records:
        start, end = r.pop("started_at", None), r.pop("finished_at", None)
        if start is None or end is None or not r.get("wall_s"):
            continue
        active = _overlap(running, start, end)
        for key in ("train_s", "eval_s"):
            if r.get(key) is not None:
                r[key] *= active / r["wall_s"]
        r["wall_s"] = active


def xstilts_runs(out_dir: Path) -> list[dict[str, Any]]:
    """The store's final scores in trainer_grid.py's record shape (primary metric only), with each
    run's wall time and, from the store's ``extra``, its training and evaluation seconds and its
    auto-thread decisions."""
    with sqlite3.connect(out_dir / "results.sqlite") as db:
        primary = json.loads(db.execute("SELECT value FROM meta WHERE key = 'primary_metric'").fetchone()[0])
        runs = db.execute("SELECT run_id, phase, intermediate, target, seed, train_steps, wall_s, started_at, "
                          "finished_at, extra FROM runs WHERE status = 'done' ORDER BY run_id").fetchall()
        records = []
        for run_id, phase, setting, target, seed, steps, wall_s, started_at, finished_at, extra in runs:
            info = json.loads(extra or "{}")
            times = {"wall_s": wall_s, "started_at": started_at, "finished_at": finished_at,
                     **{k: v for k, v in info.items() if k in ("train_s", "eval_s")},
                     "thread_log": info.get("speed", {}).get("thread_log")}  # [step, threads, other cores]
            rows = db.execute("SELECT task, language, metric, value, step FROM scores WHERE run_id = ? "
                              "AND kind = 'final' AND split = 'eval'", (run_id,)).fetchall()
            if phase == "intermediate":
                (_, _, metric, value, step), = [r for r in rows if r[1] == "en"]
                records.append({"phase": phase, "setting": setting, "seed": seed, "metric": metric,
                                "selected_step": step, "steps": steps, "dev_score": value, **times})
            else:
                metric = primary[target]
                chosen = [r for r in rows if r[0] == target and r[2] == metric]
                records.append({"phase": phase, "setting": setting, "target": target, "seed": seed,
                                "metric": metric, "selected_step": chosen[0][4], "steps": steps,
                                "scores": {lang: value for _, lang, _, value, _ in chosen}, **times})
    return records


# ---------------------------------------------------------------------------------------- summary

def cells(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per 'setting -> target': metric and per-seed (non-English mean, English) of the final scores."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["phase"] != "target":
            continue
        cell = out.setdefault(f"{r['setting']} -> {r['target']}", {"metric": r["metric"], "zero_shot": {},
                                                                     "en": {}})
        others = [v for lang, v in r["scores"].items() if lang != "en"]
        cell["zero_shot"][r["seed"]] = fmean(others) if others else math.nan
        cell["en"][r["seed"]] = r["scores"]["en"]
    return out


def noise_halfwidth(a: list[float], b: list[float]) -> float:
    """95 % half-width for a difference of means: Welch's SE times t at the smaller side's df."""
    from scipy.stats import t

    se = math.sqrt(variance(a) / len(a) + variance(b) / len(b))
    return float(t.ppf(0.975, min(len(a), len(b)) - 1)) * se


def compare(a: dict[int, float], b: dict[int, float]) -> dict[str, Any]:
    """Mean of each side over seeds, their difference, and whether it is within seed noise."""
    mean_a, mean_b = fmean(a.values()), fmean(b.values())
    out: dict[str, Any] = {"xs": mean_a, "hf": mean_b, "diff": mean_a - mean_b, "noise": None, "within": None}
    if min(len(a), len(b)) >= 2:
        out["noise"] = noise_halfwidth(list(a.values()), list(b.values()))
        out["within"] = abs(out["diff"]) <= out["noise"]
    return out


def calibrate(trials: int = 20_000, seed: int = 0) -> str:
    """False "not within noise" rates of :func:`noise_halfwidth` on null experiments (no true difference)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lines = ["| seeds a side | spread ratio | false verdicts |", "|---|---|---|"]
    for n in (2, 3, 5):
        for ratio in (1.0, 3.0, 10.0):
            false = sum(abs(fmean(a) - fmean(b)) > noise_halfwidth(list(a), list(b))
                        for a, b in zip(rng.normal(size=(trials, n)).tolist(),
                                        (ratio * rng.normal(size=(trials, n))).tolist(), strict=True))
            lines.append(f"| {n} | {ratio:g} | {false / trials:.3f} |")
    return "\n".join(lines)


def phase2_scores(records: list[dict[str, Any]]) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for r in records:
        if r["phase"] == "intermediate":
            out.setdefault(r["setting"], {})[r["seed"]] = r["dev_score"]
    return out


def _cpu_line() -> str:
    import torch

    gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, {gib:.0f} GiB, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads by default")


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _yes(within: bool | None) -> str:
    return "n/a" if within is None else ("yes" if within else "**no**")


def markdown_scores(res: dict[str, Any]) -> list[str]:
    """The per-cell score table of :func:`summarise`'s output."""
    lines = ["| setting → target (metric) | xstilts zero-shot | HF zero-shot | diff | seed noise (95 %) | "
             "within noise | xstilts en | HF en | diff en | within noise (en) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key, c in res["cells"].items():
        z, e = c["zero_shot"], c["en"]
        lines.append(f"| {key} ({c['metric']}) | {_fmt(z['xs'])} | {_fmt(z['hf'])} | {_fmt(z['diff'], '+.2f')} | "
                     f"{_fmt(z['noise'])} | {_yes(z['within'])} | {_fmt(e['xs'])} | {_fmt(e['hf'])} | "
                     f"{_fmt(e['diff'], '+.2f')} | {_yes(e['within'])} |")
    for setting, c in res["phase2"].items():
        lines.append(f"| {setting} (phase 2, English dev) | | | | | | {_fmt(c['xs'])} | {_fmt(c['hf'])} | "
                     f"{_fmt(c['diff'], '+.2f')} | {_yes(c['within'])} |")
    return lines


def time_breakdown(records: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per kind of run (phase 2 per setting, each target), both sides' summed run wall time and the
    part of it spent evaluating; the rest is training, loading and saving. Empty for older records."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for side in SIDES:
        for r in records.get(side, []):
            if r.get("wall_s") is None or r.get("eval_s") is None:
                continue
            key = f"phase 2 ({r['setting']})" if r["phase"] == "intermediate" else f"target {r['target']}"
            t = out.setdefault(key, {}).setdefault(side, {"runs": 0, "wall_s": 0.0, "eval_s": 0.0})
            t["runs"] += 1
            t["wall_s"] += r["wall_s"]
            t["eval_s"] += r["eval_s"]
    return {k: v for k, v in out.items() if set(v) == set(SIDES)}


def markdown_times(res: dict[str, Any]) -> list[str]:
    """Where each side's run time went (from :func:`time_breakdown`), with the ratios per part."""
    times = res.get("times") or {}
    if not times:
        return []
    lines = ["", "| runs of | n | xstilts s (eval s) | HF s (eval s) | HF / xstilts, whole runs | "
             "training etc. | evaluation |", "|---|---|---|---|---|---|---|"]
    for key, t in times.items():
        xs, hf = t["xs"], t["hf"]
        lines.append(f"| {key} | {xs['runs']} | {xs['wall_s']:.0f} ({xs['eval_s']:.0f}) | {hf['wall_s']:.0f} "
                     f"({hf['eval_s']:.0f}) | {hf['wall_s'] / xs['wall_s']:.2f}× | "
                     f"{(hf['wall_s'] - hf['eval_s']) / (xs['wall_s'] - xs['eval_s']):.2f}× | "
                     f"{hf['eval_s'] / xs['eval_s']:.2f}× |")
    return lines


def markdown(res: dict[str, Any]) -> str:
    xs, hf = res["xs"], res["hf"]
    timing = "one side after the other"
    if res.get("slice_s"):
        hf_turn = res.get("hf_slice_s", res["slice_s"])
        turns = (f"{res['slice_s']:g} s a turn" if hf_turn == res["slice_s"]
                 else f"turns of {res['slice_s']:g} s (xstilts) and {hf_turn:g} s (HF)")
        tails = [f"{side_label(side, res)} ran alone for its last {res[side]['alone_s']:.0f} s"
                 for side in SIDES if res[side].get("alone_s")]
        timing = f"time-sliced, {turns} (times are running times{'; ' + ', '.join(tails) if tails else ''})"
    lines = [f"{res['date']}; {res['machine']}; grid: {res['grid']}; Trainer head: {res.get('hf_head', 'auto')}; "
             f"{timing}",
             f"load average (1 min) before / mean / max during: xstilts {xs['load_before']:.1f} / "
             f"{xs['load_mean']:.1f} / {xs['load_max']:.1f}, HF Trainer {hf['load_before']:.1f} / "
             f"{hf['load_mean']:.1f} / {hf['load_max']:.1f}", "",
             "| side | runs | wall time | CPU time | of it system (minor page faults) | peak RSS MB |",
             "|---|---|---|---|---|---|"]
    for side in ("xs", "hf"):
        r = res[side]
        kernel = f"{r['system_s']:.0f} s ({r['minor_faults'] / 1e6:.1f} M)" if "system_s" in r else "not recorded"
        lines.append(f"| {side_label(side, res)} | {r['runs']} | {r['wall_s'] / 60:.1f} min ({r['wall_s']:.0f} s) | "
                     f"{r['cpu_s'] / 60:.1f} min | {kernel} | {r['peak_rss_mb']:.0f} |")
    lines += [f"| **HF / xstilts** | | **{res['speedup']:.2f}×** | {hf['cpu_s'] / xs['cpu_s']:.2f}× | | |", ""]
    return "\n".join(lines + markdown_scores(res) + markdown_times(res))


def summarise(records: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Both sides' final scores per cell and phase-2 setting, compared against seed noise."""
    by_side = {side: cells(records[side]) for side in SIDES}
    p2 = {side: phase2_scores(records[side]) for side in SIDES}
    return {"cells": {key: {"metric": c["metric"],
                            **{part: compare(c[part], by_side["hf"][key][part]) for part in ("zero_shot", "en")}}
                      for key, c in by_side["xs"].items()},
            "phase2": {setting: compare(scores, p2["hf"][setting]) for setting, scores in p2["xs"].items()},
            "times": time_breakdown(records)}


def combine(paths: list[Path]) -> dict[str, Any]:
    """Several ``--json`` files of the same grid with different seeds, as one comparison.

    Why: a 2-seed grid is ~1.5 h on the 2-core machine; run one seed per invocation and judge the
    scores against seed noise over all of them. Wall times stay per invocation (each one's own
    side-by-side ratio) and are summed; a seed present in two files is refused.
    """
    records: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    seen: set[int] = set()
    parts = []
    for path in paths:
        part = json.loads(path.read_text(encoding="utf-8"))
        seeds = {r["seed"] for r in part["runs"]["xs"]}
        if seeds & seen:
            raise SystemExit(f"{path}: seed(s) {sorted(seeds & seen)} already in an earlier file")
        seen |= seeds
        for side in SIDES:
            records[side] += part["runs"][side]
        parts.append({"file": str(path), "date": part["date"], "grid": part["grid"], "seeds": sorted(seeds),
                      "xs_wall_s": part["xs"]["wall_s"], "hf_wall_s": part["hf"]["wall_s"],
                      "speedup": part["speedup"], "xs_load_mean": part["xs"]["load_mean"],
                      "hf_load_mean": part["hf"]["load_mean"]})
    xs_s, hf_s = sum(p["xs_wall_s"] for p in parts), sum(p["hf_wall_s"] for p in parts)
    return {"combined": parts, "xs_wall_s": xs_s, "hf_wall_s": hf_s, "speedup": hf_s / xs_s,
            **summarise(records), "runs": records}


def markdown_combined(res: dict[str, Any]) -> str:
    lines = ["| file | date | seeds | xstilts wall s (load) | HF wall s (load) | HF / xstilts |",
             "|---|---|---|---|---|---|"]
    for p in res["combined"]:
        lines.append(f"| {p['file']} | {p['date']} | {', '.join(map(str, p['seeds']))} | "
                     f"{p['xs_wall_s']:.0f} ({p['xs_load_mean']:.1f}) | {p['hf_wall_s']:.0f} ({p['hf_load_mean']:.1f}) | "
                     f"{p['speedup']:.2f}× |")
    lines += [f"| **all** | | | {res['xs_wall_s']:.0f} | {res['hf_wall_s']:.0f} | **{res['speedup']:.2f}×** |", ""]
    return "\n".join(lines + markdown_scores(res) + markdown_times(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "quickstart.toml")
    ap.add_argument("--data-dir", type=Path, default=REPO / ".." / "shared" / "data")
    ap.add_argument("--seeds", type=_int_list, default=None, help="e.g. 1 or 1,2 (both sides)")
    ap.add_argument("--languages", default=None, help="target languages, e.g. en,de (English is always added)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply example caps and eval_every (both sides)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads on both sides (default: each side's own: xstilts auto, PyTorch's)")
    ap.add_argument("--set", action="append", default=[], help="any config value, as `xstilts run --set` (both)")
    ap.add_argument("--hf-head", choices=("auto", "xstilts"), default="auto",
                    help="the Trainer side's classification head (trainer_grid.py --head)")
    ap.add_argument("--hf-first", action="store_true", help="run the Trainer side first")
    ap.add_argument("--slice", type=float, default=None, metavar="S",
                    help="run the sides time-sliced, S seconds a turn, instead of one after the other")
    ap.add_argument("--hf-slice", type=float, default=None, metavar="T",
                    help="with --slice: the Trainer side's turn (default S); T/S near the expected time ratio "
                         "makes both sides finish together")
    ap.add_argument("--xs-parallel", type=int, default=None,
                    help="xstilts side only: N runs at once, one CPU each (Ray executor, local instance)")
    ap.add_argument("--xs-runs", type=int, default=None, metavar="N",
                    help="xstilts side only: runtime.parallel_runs = N (N runs at once, worker processes)")
    ap.add_argument("--hf-runs", type=int, default=None, metavar="N",
                    help="Trainer side only: the seeds split over N trainer_grid.py processes at once (--processes)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--combine", type=Path, nargs="+", default=None, metavar="JSON",
                    help="run nothing: judge the scores of earlier --json files (other seeds) together")
    ap.add_argument("--calibrate", action="store_true", help="run nothing: the noise rule on null experiments")
    args = ap.parse_args()
    if args.calibrate:
        print(calibrate())
        return
    if args.combine:
        res = combine(args.combine)
        print(markdown_combined(res))
        if args.json:
            args.json.write_text(json.dumps(res, indent=1), encoding="utf-8")
        return
    args.config, args.data_dir = args.config.resolve(), args.data_dir.resolve()

    sets = grid_sets(args)
    set_args = [a for s in sets for a in ("--set", s)]
    env = {**os.environ, "XSTILTS_DATA": str(args.data_dir),
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    started = datetime.now(UTC)
    res: dict[str, Any] = {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": _cpu_line(),
                           "config": str(args.config), "sets": sets,
                           "grid": " ".join(sets) if sets else "as in the config", "hf_head": args.hf_head}
    records: dict[str, list[dict[str, Any]]] = {}
    xs_only: list[str] = []
    if args.hf_slice and not args.slice:
        raise SystemExit("--hf-slice is the Trainer side's turn under --slice: give --slice too")
    if args.xs_parallel and args.slice:
        raise SystemExit("--slice stops one process group a side; Ray's workers are not in it: use one or the other")
    if args.xs_runs:
        if args.threads or args.xs_parallel:
            raise SystemExit("--xs-runs shares the cores through auto threads: leave out --threads and --xs-parallel")
        res["xs_runs"] = args.xs_runs
        xs_only += ["--set", f"runtime.parallel_runs={args.xs_runs}"]
    if args.hf_runs:
        if args.threads:
            raise SystemExit("--hf-runs gives each Trainer process cores / N threads: leave out --threads")
        res["hf_runs"] = args.hf_runs
    if args.xs_parallel:
        res["xs_parallel"] = args.xs_parallel
        for s in ("executor=\"ray\"", f"ray.num_cpus={args.xs_parallel}", "ray.cpus_per_run=1"):
            xs_only += ["--set", s]
    with tempfile.TemporaryDirectory(prefix="bench-study-") as tmp:
        work = Path(tmp)
        commands = {
            "xs": [str(Path(sys.executable).with_name("xstilts")), "run", str(args.config), "-o", str(work / "xs"),
                   *set_args, *xs_only],
            "hf": [sys.executable, str(Path(__file__).with_name("trainer_grid.py")), "--config", str(args.config),
                   *set_args, "--head", args.hf_head, "--json", str(work / "hf.json"),
                   *(["--processes", str(args.hf_runs)] if args.hf_runs else [])],
        }
        order = ("hf", "xs") if args.hf_first else ("xs", "hf")
        if args.slice:
            res["slice_s"], res["hf_slice_s"] = args.slice, args.hf_slice or args.slice
            sliced, running = run_sliced({side: commands[side] for side in order}, env,
                                         {side: work / f"{side}.log" for side in order},
                                         {"xs": res["slice_s"], "hf": res["hf_slice_s"]})
        for side in order:
            res[side] = (sliced[side] if args.slice
                         else run_side(side_label(side, res), commands[side], env, work / f"{side}.log"))
            records[side] = (xstilts_runs(work / "xs") if side == "xs"
                             else json.loads((work / "hf.json").read_text(encoding="utf-8"))["runs"])
            if args.slice:
                active_times(records[side], running[side])
            res[side]["runs"] = len(records[side])
            print(side, json.dumps(res[side]), flush=True)
    if res["xs"]["runs"] != res["hf"]["runs"]:
        raise SystemExit(f"the sides ran different grids: {res['xs']['runs']} vs {res['hf']['runs']} runs")
    res["speedup"] = res["hf"]["wall_s"] / res["xs"]["wall_s"]
    res.update(summarise(records))
    res["runs"] = records
    print()
    print(markdown(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
