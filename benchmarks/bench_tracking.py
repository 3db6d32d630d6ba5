"""What live tracking (``[runtime] log_with = ["tensorboard"]``) costs the training loop.

Usage::

    python benchmarks/bench_tracking.py [--steps 200] [--repeats 3]

The same short training (a tiny random 2-layer BERT, 32 wide, classification head, batch 8,
synthetic sequences of 16-48 tokens; ``xstilts.training.loop.train`` with one evaluation at the
end) runs with and without a TensorBoard tracker, alternately, ``--repeats`` times each, one
intra-op thread. Reported: wall seconds of the ``train`` call per side (median and all), and the
median difference per step. The load average is printed beside it: on a shared machine only a
difference larger than the spread between repeats is a cost.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def one(steps: int, tracked: bool, out: Path) -> float:
    import numpy as np
    import torch
    from transformers import BertConfig, BertModel

    from xstilts.config import RuntimeConfig, TrainConfig
    from xstilts.heads import get_head_kind
    from xstilts.tasks import get_task
    from xstilts.training.loop import Job, set_seed, train
    from xstilts.training.tracking import run_tracker

    set_seed(0)
    encoder = BertModel(BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=64, max_position_embeddings=64), add_pooling_layer=False)
    task = get_task("sst2")
    kind = get_head_kind(task.head)
    head = kind.build(task, 32, 0.1)
    rng = np.random.default_rng(0)
    feats = []
    for _ in range(400):
        n = int(rng.integers(16, 48))
        feats.append({"input_ids": [0, *rng.integers(5, 1000, n - 2).tolist(), 2], "length": n,
                      "label": int(rng.integers(0, 2))})
    hp = TrainConfig(lr=1e-3, batch_size=8, max_steps=steps, max_length=48)
    runtime = RuntimeConfig(progress=False, threads=1, log_with=["tensorboard"] if tracked else [])
    tracker = run_tracker(runtime.log_with, f"bench-{time.time_ns()}", "bench", out, "bench", hp.model_dump())
    torch.set_num_threads(1)
    started = time.perf_counter()
    if tracker is not None:
        with tracker:
            train(encoder, [Job("sst2", kind, head, feats)], hp, runtime, 0, 1, lambda step: 0.0, tracker=tracker)
    else:
        train(encoder, [Job("sst2", kind, head, feats)], hp, runtime, 0, 1, lambda step: 0.0)
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        one(10, True, Path(tmp))  # warm-up: imports, first SummaryWriter
        for _ in range(args.repeats):
            for tracked in (False, True):
                times[tracked].append(one(args.steps, tracked, Path(tmp)))
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    for tracked in (False, True):
        ts = times[tracked]
        print(f"{'tensorboard' if tracked else 'off':12s} median {statistics.median(ts):7.2f} s  "
              f"all {', '.join(f'{t:.2f}' for t in ts)}")
    diff = statistics.median(times[True]) - statistics.median(times[False])
    print(f"difference {diff:+.2f} s over {args.steps} steps = {1000 * diff / args.steps:+.2f} ms/step; "
          f"load {' '.join(load)}")


if __name__ == "__main__":
    main()
