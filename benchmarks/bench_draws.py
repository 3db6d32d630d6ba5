"""PyTorch's CPU dropout draws against models/draws.py's kernel: per element, and in the training loop.

Usage: ``python benchmarks/bench_draws.py [--task xnli] [--bf16] [--rounds 4] [--steps 8] [--other JSON]``

1. The draws alone, one thread (as PyTorch draws them): ns per element for ``bernoulli_`` and the
   kernel on an attention-probability tensor (fp32) and a hidden activation (bf16), best of 5.
2. The loop (:func:`xstilts.training.loop.train`) on real English batches of ``--task``, 2 threads:
   ``--rounds`` pairs of ``--steps``-step runs from the same weights and seed, ``runtime.draw_kernel``
   off and on, alternating (this VM's speed drifts between minutes, so only paired ratios are read).
   Each pair's trained weights are compared bit for bit: the kernel claims the same draws.
   ``--other`` sets what the kernel is paired with (default ``{"draw_kernel": false}``), e.g.
   ``{"fast_dropout": true}``: another random stream, so there the weights differ by design.
3. ``--mode-cost``: what the dispatch mode costs by itself -- a forward and backward pass of the
   default model with dropout 0 (nothing to draw), in and out of :class:`~xstilts.models.draws.KernelDraws`,
   alternating, median of 6 (1 and 2 threads, 32 random sequences of 24 and 48 tokens).
Prints real tokens/s per round, the ratio per pair and the median ratio.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

import torch
from _fresh import fresh

REPO = Path(__file__).resolve().parents[1]


def per_element(draw, shape: tuple[int, ...], dtype: torch.dtype, trials: int = 5) -> float:
    t = torch.empty(shape, dtype=dtype)
    best = float("inf")
    for _ in range(trials):
        start = time.perf_counter()
        draw(t)
        best = min(best, time.perf_counter() - start)
    return 1e9 * best / t.numel()


def mode_cost(threads: int, length: int, rounds: int = 6) -> tuple[float, float]:
    """Median seconds of a forward + backward pass with dropout 0, outside and inside the mode."""
    from contextlib import nullcontext

    from xstilts.models import draws
    from xstilts.models.loading import load_encoder

    torch.set_num_threads(threads)
    encoder = load_encoder("default", dropout=0.0).train()
    ids = torch.randint(5, 1000, (32, length), generator=torch.Generator().manual_seed(0))

    def step(inside: bool) -> float:
        start = time.perf_counter()
        with draws.KernelDraws() if inside else nullcontext():
            out = encoder(input_ids=ids).last_hidden_state
        out.float().pow(2).mean().backward()
        return time.perf_counter() - start

    step(False), step(True)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for inside in (False, True):
            times[inside].append(step(inside))
    return statistics.median(times[False]), statistics.median(times[True])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=REPO / ".." / "shared" / "data")
    ap.add_argument("--task", default="xnli")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--runtime", default="{}", help="further RuntimeConfig overrides as JSON (both sides)")
    ap.add_argument("--mode-cost", action="store_true", help="only measure the dispatch mode's own cost")
    ap.add_argument("--other", default='{"draw_kernel": false}', help="the other side's overrides as JSON")
    args = ap.parse_args()

    from xstilts.config import RuntimeConfig, TrainConfig
    from xstilts.models import draws
    from xstilts.training.loop import Job, set_seed, train
    from xstilts.training.speed import prepare_encoder

    print(f"kernel available: {draws.available()}; load average {os.getloadavg()}")
    if args.mode_cost:
        print("\n| threads | tokens | outside the mode, ms | inside, ms | ratio |\n|---|---|---|---|---|")
        for threads, length in ((1, 24), (1, 48), (2, 24), (2, 48)):
            out, inside = mode_cost(threads, length)
            print(f"| {threads} | {length} | {1e3 * out:.0f} | {1e3 * inside:.0f} | {inside / out:.3f}× |")
        return
    torch.set_num_threads(1)
    print("\n| tensor | bernoulli_ ns/element | kernel ns/element | ratio |\n|---|---|---|---|")
    for label, shape, dtype in (("attention probabilities [32, 12, 48, 48] fp32", (32, 12, 48, 48), torch.float32),
                                ("hidden [32, 48, 384] bf16", (32, 48, 384), torch.bfloat16)):
        a = per_element(lambda t: t.bernoulli_(0.9), shape, dtype)
        b = per_element(lambda t: draws.kernel_bernoulli_(t, 0.9), shape, dtype)
        print(f"| {label} | {a:.2f} | {b:.2f} | {a / b:.1f}× |")

    overrides = {"threads": 2, "progress": False, "bf16": args.bf16, **json.loads(args.runtime)}
    other = json.loads(args.other)
    runtimes = {False: RuntimeConfig(**{**overrides, **other}), True: RuntimeConfig(**{**overrides, "draw_kernel": True})}
    n = args.rounds * args.steps * args.batch_size
    tok, task, kind, feats, encoder, head = fresh(args.task, 4 * n, args.data_dir)
    prepared = {}
    for flag, runtime in runtimes.items():  # each side's switches on its own copy of the same weights
        prepared[flag] = copy.deepcopy(encoder)
        prepare_encoder(prepared[flag], runtime, [feats], tok.pad_token_id)
    hp = TrainConfig(lr=5e-5, batch_size=args.batch_size, max_steps=args.steps, eval_every=10**9)
    warm = hp.model_copy(update={"max_steps": 2})  # first steps allocate and fault in memory: not timed
    train(copy.deepcopy(prepared[True]), [Job(task.name, kind, copy.deepcopy(head), feats)], warm, runtimes[True], 1,
          tok.pad_token_id, lambda s: 0.0)
    print(f"\nthe loop: {args.task}, {'bf16' if args.bf16 else 'fp32'}, 2 threads, {args.steps} steps a run\n")
    print(f"| round | {json.dumps(other)}, real tokens/s | kernel, real tokens/s | ratio | weights equal |")
    print("|---|---|---|---|---|")
    ratios = []
    for r in range(args.rounds):
        speed, weights = {}, {}
        for flag in ((False, True) if r % 2 == 0 else (True, False)):
            enc, hd = copy.deepcopy(prepared[flag]), copy.deepcopy(head)
            set_seed(100 + r)
            out = train(enc, [Job(task.name, kind, hd, feats)], hp, runtimes[flag], 100 + r, tok.pad_token_id,
                        lambda s: 0.0)
            speed[flag] = out.train_tokens / out.train_seconds
            weights[flag] = [p.detach().clone() for p in (*enc.parameters(), *hd.parameters())]
        equal = all(torch.equal(a, b) for a, b in zip(weights[False], weights[True], strict=True))
        ratios.append(speed[True] / speed[False])
        print(f"| {r + 1} | {speed[False]:.0f} | {speed[True]:.0f} | {ratios[-1]:.3f}× | {'yes' if equal else 'NO'} |")
    print(f"\nmedian ratio {statistics.median(ratios):.3f}× over {len(ratios)} pairs; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
