"""One training process on all cores vs one process per core side by side: total training throughput.

Usage: ``python benchmarks/bench_runs_at_once.py [--rounds 2] [--seconds 15] [--lengths 30,50]``

Why: ``runtime.parallel_runs`` (executors/pool.py) rests on the claim that on a few CPU cores N
small runs a core each train more tokens per second in total than one run on all N cores. This
measures that claim directly: a training step (forward, backward, fused AdamW) of a BERT with the
default model's shape (12 layers, hidden 384, 12 heads, FFN 1,536; random weights and a 15,000-row
vocabulary, about what trimming keeps) on a batch of 32 random sequences of a fixed length, in
fp32 and in bf16 autocast. Each round runs, one after the other, (a) one process with a thread per
core and (b) one process per core with one thread each, all started together; each process trains
for ``--seconds`` after 3 warm-up steps and reports its tokens/s. Printed: per round and condition
the total tokens/s of (a) and of (b) and their ratio, as a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

STEP = r"""
import sys, time, torch
from transformers import BertConfig, BertModel
threads, seconds, precision, length = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
cfg = BertConfig(vocab_size=15000, hidden_size=384, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=1536, max_position_embeddings=514)
model = BertModel(cfg, add_pooling_layer=False).train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
ids = torch.randint(5, 15000, (32, length))

def step():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        hidden = model(input_ids=ids).last_hidden_state
    hidden[:, 0].float().pow(2).mean().backward()
    opt.step()
    opt.zero_grad()

for _ in range(3):
    step()
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < seconds:
    step()
    n += 1
print(ids.numel() * n / (time.perf_counter() - t0))
"""


def tokens_per_s(processes: int, threads: int, seconds: float, precision: str, length: int) -> float:
    """Total tokens/s of ``processes`` training processes started together, ``threads`` each."""
    procs = [subprocess.Popen([sys.executable, "-c", STEP, str(threads), str(seconds), precision, str(length)],
                              stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    outs = [proc.communicate()[0] for proc in procs]
    if any(proc.returncode != 0 for proc in procs):
        raise SystemExit("a training process failed")
    return sum(float(out.strip().splitlines()[-1]) for out in outs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--lengths", default="30,50", help="sequence lengths, e.g. 30,50 (PAN-X-like, XNLI-like)")
    ap.add_argument("--precisions", default="fp32,bf16")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {cores} cores, load before {os.getloadavg()[0]:.2f}; "
          f"batch 32, {args.seconds:g} s a process")
    print()
    print(f"| round | precision | length | one process, {cores} threads (tokens/s) | "
          f"{cores} processes, 1 thread each (total tokens/s) | ratio |")
    print("|---|---|---|---|---|---|")
    for r in range(1, args.rounds + 1):
        for precision in args.precisions.split(","):
            for length in map(int, args.lengths.split(",")):
                one = tokens_per_s(1, cores, args.seconds, precision, length)
                many = tokens_per_s(cores, 1, args.seconds, precision, length)
                print(f"| {r} | {precision} | {length} | {one:,.0f} | {many:,.0f} | {many / one:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
