"""Issue 14's goal table measured on this machine, in one command.

Usage::

    python benchmarks/goals.py --out goals-run                    # every step: 70 min on RESULTS' Intel Xeon VM
    python benchmarks/goals.py --out goals-run --only panx,peak   # some of them
    python benchmarks/goals.py --out goals-run --summarize        # the table from what has run

Why: ``benchmarks/RESULTS.md`` opens with a table of figures from a few 2-core VMs; whoever wants
them for their own hardware should not have to copy eight commands out of it. This runs those
commands one after another (two timed jobs at once would slow each other on a small machine),
with the settings RESULTS records:

- ``panx``, ``xnli``: ``bench_train.py`` -- fp32 training against the fairly configured HF Trainer,
  3 and 4 seeds a side (the timed pair's seed 1 and extra seeds trained alone);
- ``peak``: ``bench_peak.py --runs-at-once 2`` for PAN-X and XNLI -- the fp32 step's useful FLOP/s
  on real tokens against the best measured fp32 matmul rate, as a grid's pool of runs trains;
- ``quickstart``: command 1 (``xstilts run configs/quickstart.toml``) by ``bf16 = "auto"`` and in
  fp32, each from an empty output directory;
- ``busy``: ``bench_busy.py`` -- seed 1 of the quickstart alone and beside a ``nice -19`` loop;
- ``study``: ``bench_study.py`` -- the quickstart grid by xstilts and by a plain Trainer script.

Each step writes ``OUT/<step>.json`` and ``OUT/<step>.log``; a step whose JSON exists is not run
again, so an interrupted invocation resumes where it stopped (a quickstart cut short restarts from
an empty directory: its wall time must be a whole run's). Each step runs as ``bench_study.py`` runs
a side (:func:`bench_study.run_side`), so its record holds the one-minute load average sampled
during it and the CPU time the hypervisor stole, since a figure is only as good as the quiet it ran
in, and its CPU time and peak RSS. The table goes to stdout and ``OUT/goals.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from bench_study import run_side
from bench_train import _machine

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
STUDY_SETS = ["runtime.fast_dropout=true", "runtime.first_token_only=true", "runtime.pack_sequences=true",
              "runtime.bf16=true"]


def steps(out: Path) -> dict[str, list[str]]:
    """Each step's command; ``{json}`` stands for the JSON file it writes."""
    py = [sys.executable]
    xstilts = py + ["-m", "xstilts.cli", "run", str(REPO / "configs" / "quickstart.toml")]
    study = py + [str(BENCH / "bench_study.py"), "--seeds", "1,2", "--hf-head", "xstilts", "--hf-first",
                  "--xs-runs", "2", "--slice", "5", "--hf-slice", "11", "--json", "{json}"]
    for value in STUDY_SETS:
        study += ["--set", value]
    return {
        "panx": py + [str(BENCH / "bench_train.py"), "--only", "panx", "--epochs", "2", "--lr", "2e-4",
                      "--xs-seeds", "2,3", "--hf-seeds", "2,3", "--json", "{json}"],
        "xnli": py + [str(BENCH / "bench_train.py"), "--only", "xnli", "--epochs", "2", "--lr", "1e-4",
                      "--xs-seeds", "2,3,4", "--hf-seeds", "2,3,4", "--json", "{json}"],
        "peak-panx": py + [str(BENCH / "bench_peak.py"), "--task", "panx", "--runs-at-once", "2", "--json", "{json}"],
        "peak-xnli": py + [str(BENCH / "bench_peak.py"), "--task", "xnli", "--runs-at-once", "2", "--json", "{json}"],
        "quickstart-auto": xstilts + ["--output-dir", str(out / "quickstart-auto")],
        "quickstart-fp32": xstilts + ["--set", "runtime.bf16=false", "--output-dir", str(out / "quickstart-fp32")],
        "busy": py + [str(BENCH / "bench_busy.py"), "--conditions", "alone,niced", "--json", "{json}"],
        "study": study,
    }


GROUPS = {"panx": ["panx"], "xnli": ["xnli"], "peak": ["peak-panx", "peak-xnli"],
          "quickstart": ["quickstart-auto", "quickstart-fp32"], "busy": ["busy"], "study": ["study"]}


def commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_step(name: str, cmd: list[str], out: Path) -> None:
    """Run one step unless its record exists; the record (``OUT/<name>.json``) is written last, whole."""
    record = out / f"{name}.json"
    if record.exists():
        print(f"{name}: done before ({record.name}), not rerun", flush=True)
        return
    quickstart = name.startswith("quickstart")
    result = out / (f"{name}.result.json" if not quickstart else f"{name}")
    if quickstart:
        shutil.rmtree(result, ignore_errors=True)  # a cut-short run would resume: its time would not be a run's
    cmd = [str(result) if part == "{json}" else part for part in cmd]
    print(f"{name}: {' '.join(cmd)}", flush=True)
    start = datetime.now().isoformat(timespec="seconds")
    # wall time, CPU time, peak RSS, load and steal; a failed step exits with its log's tail
    figures = run_side(name, cmd, dict(os.environ), out / f"{name}.log")
    body = {"step": name, "commit": commit(), "start": start, **figures, "command": cmd}
    if not quickstart:
        body["result"] = json.loads(result.read_text(encoding="utf-8"))
    tmp = record.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=1), encoding="utf-8")
    tmp.replace(record)
    print(f"{name}: {figures['wall_s']:.0f} s, mean load {figures['load_mean']:.2f}", flush=True)


def _mean(scores: dict[str, float]) -> float:
    return statistics.fmean(scores.values())


def _when(rec: dict) -> str:
    load = f", mean load {rec['load_mean']:.2f}" if rec.get("load_mean") is not None else ""
    return f"{rec['commit']}, {rec['start'].replace('T', ' ')[:16]}{load}"


def training_row(rec: dict, task: str, goal: float) -> tuple[str, str, str]:
    pair = rec["result"][f"train-{task}"]
    xs, hf = pair["xs"], pair["hf"]
    ratio = xs["train_tokens_per_s"] / hf["train_tokens_per_s"]
    dev_xs, dev_hf = _mean(xs["seed_scores"]), _mean(hf["seed_scores"])
    met = ratio >= goal and dev_xs >= dev_hf
    text = (f"**{ratio:.2f}×** ({xs['train_tokens_per_s']:,.0f} vs {hf['train_tokens_per_s']:,.0f} real tokens/s; "
            f"dev {xs['metric']} {dev_xs:.1f} vs {dev_hf:.1f} over {len(xs['seed_scores'])} and "
            f"{len(hf['seed_scores'])} seeds; {_when(rec)})")
    return (f"{task.upper() if task == 'xnli' else 'PAN-X'} training, fp32: ≥ {goal:g}× the fair Trainer, "
            "dev score not lower", text, "yes" if met else "no")


def summarize(out: Path) -> str:
    """The goal table from whatever records ``out`` holds."""
    recs = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("*.json"))
            if not p.name.endswith(".result.json") and p.stem != "machine"}
    rows: list[tuple[str, str, str]] = []
    for task, goal in (("panx", 2.0), ("xnli", 1.5)):
        if task in recs:
            rows.append(training_row(recs[task], task, goal))
    if "study" in recs:
        r = recs["study"]["result"]
        within = all(cell[k]["within"] for cell in r["cells"].values() for k in ("zero_shot", "en") if k in cell)
        rows.append(("the study (quickstart grid, 2 seeds): ≥ 2× a plain Trainer script, scores within seed noise",
                     f"**{r['speedup']:.2f}×** ({'every' if within else 'not every'} cell within seed noise; "
                     f"{_when(recs['study'])})", "yes" if r["speedup"] >= 2 and within else "no"))
    peaks = {t: recs[f"peak-{t}"]["result"]["combined"]["fp32"] for t in ("panx", "xnli") if f"peak-{t}" in recs}
    if peaks:
        text = "; ".join(f"{'PAN-X' if t == 'panx' else 'XNLI'} **{100 * p['useful_fraction_of_peak']['median']:.0f} %** "
                         f"(best round {100 * p['useful_fraction_of_peak']['best']:.0f} %, of "
                         f"{p['peak_gflops']:.0f} GFLOP/s; {_when(recs[f'peak-{t}'])})" for t, p in peaks.items())
        met = all(p["useful_fraction_of_peak"]["median"] >= 0.70 for p in peaks.values())
        rows.append(("fp32 training step: ≥ 70 % of the best measured fp32 matmul rate, on real tokens", text,
                     "yes" if met else "no"))
    quick = {k: recs[k] for k in ("quickstart-auto", "quickstart-fp32") if k in recs}
    if quick:
        labels = {"quickstart-auto": '`bf16 = "auto"`', "quickstart-fp32": "fp32"}
        text = "; ".join(f"{labels[k]} **{int(r['wall_s'] // 60)} min {r['wall_s'] % 60:.0f} s** ({_when(r)})"
                         for k, r in quick.items())
        rows.append(("the quickstart on idle cores: ≤ 20 min", text,
                     "yes" if all(r["wall_s"] <= 1200 for r in quick.values()) else "no"))
    if "busy" in recs:
        by = {row["condition"]: row for row in recs["busy"]["result"]}
        if {"alone", "niced"} <= by.keys():
            share = by["niced"].get("loop_cpu_share")
            rows.append(("the quickstart's seed 1 beside a `nice -19` busy loop",
                         f"**{by['niced']['wall_s']:.0f} s** beside it, **{by['alone']['wall_s']:.0f} s** alone"
                         + (f" (the loop got {100 * share:.0f} % of a core)" if share is not None else "")
                         + f"; {_when(recs['busy'])}", "see the times"))
    info = json.loads((out / "machine.json").read_text(encoding="utf-8")) if (out / "machine.json").exists() else {}
    head = f"Machine: {info.get('machine', 'not recorded')}.\n\n"
    table = "| goal | measured here | met? |\n|---|---|---|\n" + "".join(f"| {g} | {m} | {y} |\n" for g, m, y in rows)
    return head + table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for every step's record, log and output")
    ap.add_argument("--only", default=",".join(GROUPS), help=f"comma list of {', '.join(GROUPS)}")
    ap.add_argument("--summarize", action="store_true", help="only print the table from the records in --out")
    args = ap.parse_args()
    out = args.out.resolve()
    if args.summarize and not out.is_dir():
        raise SystemExit(f"--summarize: {out} is not a folder of goals.py records")
    if not args.summarize:
        wanted = [g.strip() for g in args.only.split(",") if g.strip()]
        unknown = [g for g in wanted if g not in GROUPS]
        if unknown:
            raise SystemExit(f"--only: unknown step {', '.join(unknown)} (known: {', '.join(GROUPS)})")
        out.mkdir(parents=True, exist_ok=True)
        if not (out / "machine.json").exists():
            (out / "machine.json").write_text(json.dumps({"machine": _machine()}, indent=1), encoding="utf-8")
        # the default model is converted at first use: do it now, untimed, so no step's time includes it
        subprocess.run([sys.executable, "-m", "xstilts.cli", "convert-model"], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL)
        commands = steps(out)
        for group in wanted:
            for name in GROUPS[group]:
                run_step(name, commands[name], out)
    table = summarize(out)
    (out / "goals.md").write_text(table, encoding="utf-8")
    print("\n" + table)


if __name__ == "__main__":
    main()
