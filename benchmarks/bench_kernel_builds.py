"""Training speed with two builds of the attention kernel, alternating in one process.

Usage: ``python benchmarks/bench_kernel_builds.py --other-source OLD.cpp [--task panx|xnli] [--steps 20]
[--rounds 6] [--threads 1] [--json F]``

Why: ``bench_attention_call.py`` times the kernel's calls alone, with its inputs in cache; in a
training step the kernel reads q, k, v and the dropout mask from memory and is a few per cent of the
step, so a faster call can leave a step no faster. Here the xstilts loop trains the default model on
real English examples of ``--task`` for ``--steps`` steps per round, once with this checkout's build
and once with ``--other-source`` (e.g. ``git show OLD:src/xstilts/models/csrc/varlen_attention.cpp >
old.cpp``), in ABBA order for ``--rounds`` rounds on one encoder (the weights train on: both builds
see the same drift). Printed: real tokens/s per round and build, their medians and the pairwise
ratios. Both builds must compute the same bits for the comparison to be of speed alone; check that
with ``bench_attention_call.py --train --other-source``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from _fresh import fresh

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--other-source", type=Path, required=True)
    ap.add_argument("--task", default="panx")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-dir", type=Path, default=REPO / ".." / "shared" / "data")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from xstilts.config import RuntimeConfig, TrainConfig
    from xstilts.models import attention_kernel, extensions
    from xstilts.training.loop import Job, train
    from xstilts.training.speed import prepare_encoder

    if not attention_kernel.available():
        raise SystemExit("bench_kernel_builds: the attention kernel is not available here")
    other = extensions.build(args.other_source.resolve(), "bench_other_varlen_attention", "the other kernel",
                             openmp=True)
    if other is None:
        raise SystemExit(f"bench_kernel_builds: {args.other_source} could not be built")
    builds = {"this": attention_kernel._build(), "other": other}
    runtime = RuntimeConfig(progress=False, threads=args.threads)
    tok, task, kind, feats, encoder, head = fresh(args.task, 4000, args.data_dir)
    setup = prepare_encoder(encoder, runtime, [feats], tok.pad_token_id)
    if not setup.attention_kernel_train:
        raise SystemExit("bench_kernel_builds: training does not use the attention kernel here")
    hp = TrainConfig(lr=5e-5, batch_size=32, max_steps=args.steps, eval_every=10**9)
    rates: dict[str, list[float]] = {name: [] for name in builds}
    original = attention_kernel._build
    try:
        for r in range(args.rounds):
            for name in list(builds) if r % 2 == 0 else list(builds)[::-1]:
                attention_kernel._build = lambda module=builds[name]: module  # what attend() calls
                out = train(encoder, [Job(task.name, kind, head, feats)], hp, runtime, r, tok.pad_token_id,
                            lambda step: 0.0)
                rates[name].append(out.train_tokens / out.train_seconds)
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {v[-1]:.0f}" for n, v in rates.items()),
                  flush=True)
    finally:
        attention_kernel._build = original
    median = {name: statistics.median(v) for name, v in rates.items()}
    pairwise = [a / b for a, b in zip(rates["this"], rates["other"], strict=True)]
    print(f"{args.task}, {args.threads} thread(s), {args.steps} steps a round: this build {median['this']:.0f}, "
          f"the other {median['other']:.0f} real tokens/s (medians): {median['this'] / median['other']:.3f}x; "
          f"pairwise {min(pairwise):.3f}-{max(pairwise):.3f}x; load average {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"task": args.task, "threads": args.threads, "steps": args.steps,
                                         "rates": rates, "median": median, "pairwise": pairwise}, indent=1))


if __name__ == "__main__":
    main()
