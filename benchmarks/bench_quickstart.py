"""The quickstart's wall time with every speed switch off ("before") and at the defaults ("after").

Usage::

    python benchmarks/bench_quickstart.py                 # configs/quickstart.toml, both seeds
    python benchmarks/bench_quickstart.py --seeds 1       # one seed each way (about half the time)

"Before" is the quickstart as a plain PyTorch loop would run it: padding to the batch's longest
sequence in random order (``bucket_by_length = false``), the whole 250k-row embedding matrix
trained (``trim_vocab = false``), the unfused AdamW (``fused_adamw = false``), PyTorch's default
threads, one run at a time (``parallel_runs = 1``), and evaluation batches of 128 (the former
default). "After" is the config's own runtime: the default ``RuntimeConfig`` and the config's
``[runtime]`` table, if it has one. Each side runs ``xstilts run`` from an empty output directory and an empty
tokenisation cache, one after the other in one invocation, on the same data and model; the script
prints both wall times, their ratio, peak RSS, and each side's mean zero-shot score per target
task and intermediate setting (bucketing changes the batch order, so scores differ within seed
noise; trimming and fused AdamW do not change them beyond float rounding).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_train import _int_list  # benchmarks run as scripts: their folder is on sys.path

REPO = Path(__file__).resolve().parents[1]
BEFORE = {"bucket_by_length": False, "trim_vocab": False, "fused_adamw": False, "eval_batch_size": 128,
          "parallel_runs": 1}


def variant(config_text: str, runtime: dict[str, object], seeds: list[int] | None) -> str:
    """The quickstart's TOML with these [runtime] keys (in its own table, if it has one) and, optionally, fewer seeds."""
    if seeds is not None:
        config_text, n = re.subn(r"(?m)^seeds\s*=.*$", f"seeds = {json.dumps(seeds)}", config_text)
        if n != 1:
            raise SystemExit("expected one top-level 'seeds = [...]' line in the config")
    header = re.search(r"(?m)^\[runtime\][ \t]*$", config_text)
    if header is None:
        keys = [f"{k} = {json.dumps(v)}" for k, v in runtime.items()]
        return config_text.rstrip() + "\n" + "\n".join(["", "[runtime]", *keys]) + "\n"
    head, table = config_text[:header.end()], config_text[header.end():]
    end = re.search(r"(?m)^\[", table)  # the next table, if any
    body, rest = (table[:end.start()], table[end.start():]) if end else (table, "")
    for k, v in runtime.items():  # the config's own value of a key is replaced, others are added
        line = f"{k} = {json.dumps(v)}"
        body, n = re.subn(rf"(?m)^{re.escape(k)}\s*=.*$", line, body)
        if n == 0:
            body = "\n" + line + body
    return head + body + rest


def mean_scores(out_dir: Path) -> dict[str, float]:
    """Mean final zero-shot score (non-English languages) per intermediate setting and target."""
    with sqlite3.connect(out_dir / "results.sqlite") as db:
        rows = db.execute(
            "SELECT r.intermediate, r.target, avg(s.value) FROM scores s JOIN runs r USING (run_id) "
            "WHERE s.kind = 'final' AND r.phase = 'target' AND s.task = r.target AND s.language != 'en' "
            "GROUP BY r.intermediate, r.target ORDER BY r.target, r.intermediate").fetchall()
    return {f"{setting} -> {target}": round(value, 2) for setting, target, value in rows}


def run_side(name: str, config: Path, workdir: Path, data_dir: Path) -> dict[str, object]:
    """``xstilts run`` in a child process; its wall time and its own peak RSS (from wait4)."""
    out = workdir / name
    cli = Path(sys.executable).with_name("xstilts")
    env = {**os.environ, "XSTILTS_DATA": str(data_dir)}
    load = os.getloadavg()[0]
    log = workdir / f"{name}.log"
    t0 = time.monotonic()
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen([str(cli), "run", str(config), "-o", str(out)], env=env, stdout=fh,
                                stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name}: xstilts run failed:\n{log.read_text(encoding='utf-8')[-3000:]}")
    with sqlite3.connect(out / "results.sqlite") as db:
        n_done = db.execute("SELECT count(*) FROM runs WHERE status = 'done'").fetchone()[0]
    return {"wall_s": wall, "runs_done": n_done, "load_before": load, "peak_rss_mb": usage.ru_maxrss / 1024,
            "mean_zero_shot": mean_scores(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "quickstart.toml")
    ap.add_argument("--data-dir", type=Path, default=REPO / ".." / "shared" / "data")
    ap.add_argument("--seeds", type=_int_list, default=None,
                    help="override the config's seeds, e.g. 1 (both sides)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch  # PyTorch's own default thread count, not xstilts' auto choice

    before_switches = {**BEFORE, "threads": torch.get_num_threads()}
    text = args.config.read_text(encoding="utf-8")
    results: dict[str, object] = {"config": str(args.config), "seeds": args.seeds,
                                  "before_switches": before_switches, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-quickstart-") as tmp:
        workdir = Path(tmp)
        for name, runtime in (("before", before_switches), ("after", {})):
            config = workdir / f"{name}.toml"
            config.write_text(variant(text, runtime, args.seeds), encoding="utf-8")
            results[name] = run_side(name, config, workdir, args.data_dir.resolve())
            print(name, json.dumps(results[name]), flush=True)
    before, after = results["before"], results["after"]
    results["speedup"] = before["wall_s"] / after["wall_s"]
    print(json.dumps(results, indent=1))
    print()
    print("| side | runs | wall time | peak RSS MB | load before | mean zero-shot score (non-English) |")
    print("|---|---|---|---|---|---|")
    for name in ("before", "after"):
        r = results[name]
        scores = "; ".join(f"{k} {v}" for k, v in r["mean_zero_shot"].items())
        print(f"| {name} | {r['runs_done']} | {r['wall_s'] / 60:.1f} min | {r['peak_rss_mb']:.0f} | "
              f"{r['load_before']:.1f} | {scores} |")
    print(f"| **before / after** | | **{results['speedup']:.2f}×** | | | |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
