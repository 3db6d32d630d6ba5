"""Where a training step of the xstilts loop spends its time (torch.profiler), as a short table.

Usage: ``python benchmarks/profile_step.py [--steps 4] [--threads N] [--runtime '{"trim_vocab": false}'] [--shapes 20]``

Runs the loop (:func:`xstilts.training.loop.train`) on real PAN-X English batches with the default
model: the ``--steps`` profiled steps are first run once unprofiled, from the same seed (or ``--warmup``
steps of them), then profiled. Why the same steps: the first time a batch shape is reached the
allocator grows its heap, about 190,000 page faults and 0.3 s of kernel time for PAN-X's first six
steps on a second run (fifty-second session), and that lands on whichever operator allocates the
largest output, so a warm-up on other batches bills a one-time cost to the feed-forward layers'
products. Every operator's *self* CPU time is
attributed to a stage (forward, backward: under ``autograd::engine``, optimizer: under
``Optimizer.step``/``zero_grad``, other: gradient clipping, collation, ...) and to an operator
family (matmul, attention, layer norm, ...); oneDNN's ``mkldnn::`` operators count too (the fp32
linear layers' forward and input gradient run there with ``runtime.onednn_linear``). Printed: ms
per step and share of the profiled time, biggest first, as a Markdown table. ``--shapes N`` adds
the N costliest matrix products by operand shapes and layout, with their rate from the profiler's
2*M*K*N count: which of the layers' products lose against the machine's peak.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path

import torch
from _fresh import fresh
from torch.profiler import ProfilerActivity, profile

REPO = Path(__file__).resolve().parents[1]

# operators whose self time is counted: PyTorch's, oneDNN's and xstilts' compiled ones (the attention kernel)
COUNTED = ("aten::", "mkldnn::", "xstilts::")
FAMILIES = [  # (family, substrings of operator names), first match wins
    ("AdamW update", ("_fused_adam", "adam")),
    ("matmul (linear layers)", ("addmm", "aten::mm", "aten::bmm", "aten::matmul", "aten::linear", "_linear_pointwise")),
    ("attention (SDPA kernel)", ("scaled_dot_product", "flash_attention", "_efficient_attention")),
    ("attention (xstilts kernel)", ("varlen_attention",)),
    ("layer norm", ("layer_norm",)),
    ("GELU", ("gelu",)),
    ("dropout", ("dropout", "bernoulli")),
    ("softmax / cross-entropy", ("softmax", "nll_loss", "cross_entropy")),
    ("embedding, gathers (index ops)", ("embedding", "index_select", "index_add", "index_copy", "aten::index")),
    ("norms (grad clipping)", ("norm", "clamp")),
    ("copies / layout", ("copy_", "contiguous", "clone", "to_copy", "transpose", "reshape", "view", "permute",
                         "cat", "stack", "as_strided", "empty", "zeros", "fill_", "full")),
    ("element-wise arithmetic", ("add", "mul", "div", "sub", "sqrt", "lerp", "addcdiv", "addcmul", "tanh",
                                 "pow", "exp", "foreach", "where", "rsub")),
]


def family(name: str) -> str:
    for label, keys in FAMILIES:
        if any(k in name for k in keys):
            return label
    return "other"


def operands(event) -> str:
    """A product's matrix operands as ``1901x384 @ 384x1536^T``: ``^T`` marks a transposed view (unit
    stride along rows), the layout that decides which of the library's kernels multiplies it."""
    shown = []
    shapes = event.structured_input_shapes or event.input_shapes
    strides = event.structured_input_strides or [[]] * len(shapes)
    for shape, stride in zip(shapes, strides, strict=False):
        if isinstance(shape, list) and len(shape) >= 2:
            flag = "^T" if len(stride) == len(shape) and stride[-2] == 1 and stride[-1] != 1 else ""
            shown.append("x".join(map(str, shape)) + flag)
    return " @ ".join(shown)


def stage(event) -> str:
    node = event
    while node is not None:
        n = node.name
        if n.startswith("Optimizer.step") or n.startswith("Optimizer.zero_grad"):
            return "optimizer"
        if n.startswith("autograd::engine::evaluate_function"):
            return "backward"
        node = node.cpu_parent
    return "forward / other"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=REPO / ".." / "shared" / "data")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=None,
                    help="unprofiled steps first, the profiled run's own first ones (default: all --steps)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--task", default="panx")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--runtime", default="{}", help="RuntimeConfig overrides as JSON")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--ops", type=int, default=0, help="also list the N costliest aten operators")
    ap.add_argument("--shapes", type=int, default=0,
                    help="also list the N costliest matrix products by operand shapes, with their GFLOP/s")
    args = ap.parse_args()

    from xstilts.config import RuntimeConfig, TrainConfig
    from xstilts.training.loop import Job, train
    from xstilts.training.speed import prepare_encoder

    overrides = json.loads(args.runtime)
    if args.threads:
        overrides["threads"] = args.threads
    runtime = RuntimeConfig(progress=False, **overrides)
    warmup = args.steps if args.warmup is None else args.warmup
    n = args.steps * args.batch_size
    tok, task, kind, feats, encoder, head = fresh(args.task, 20 * n, args.data_dir)
    setup = prepare_encoder(encoder, runtime, [feats], tok.pad_token_id)
    hp = TrainConfig(lr=5e-5, batch_size=args.batch_size, max_steps=warmup, eval_every=10**9)
    if warmup:  # the seed of the profiled run: the same batches, in the same order
        train(encoder, [Job(task.name, kind, head, feats)], hp, runtime, 2, tok.pad_token_id, lambda step: 0.0)
    hp = hp.model_copy(update={"max_steps": args.steps})
    with profile(activities=[ProfilerActivity.CPU], record_shapes=bool(args.shapes), with_flops=bool(args.shapes)) as prof:
        out = train(encoder, [Job(task.name, kind, head, feats)], hp, runtime, 2, tok.pad_token_id, lambda step: 0.0)

    by_key: dict[tuple[str, str], float] = defaultdict(float)
    by_stage: dict[str, float] = defaultdict(float)
    by_op: dict[tuple[str, str], float] = defaultdict(float)
    by_shape: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for ev in prof.events():
        if ev.self_cpu_time_total <= 0 or not ev.name.startswith(COUNTED):
            continue
        s, f = stage(ev), family(ev.name)
        by_key[(s, f)] += ev.self_cpu_time_total / 1e3
        by_stage[s] += ev.self_cpu_time_total / 1e3
        by_op[(s, ev.name)] += ev.self_cpu_time_total / 1e3
        if args.shapes and f.startswith("matmul") and ev.flops:
            row = by_shape[(s, ev.name, operands(ev))]
            row[0] += ev.self_cpu_time_total / 1e3
            row[1] += ev.flops
            row[2] += 1
    total_ops = sum(by_stage.values())
    step_ms = 1e3 * out.train_seconds / out.steps
    print(f"runtime: {runtime.model_dump(exclude={'cache_dir', 'progress', 'save_target_checkpoints'})}")
    print(f"setup: {setup.as_dict()}; torch threads {torch.get_num_threads()}; load average {os.getloadavg()}")
    print(f"{out.steps} profiled steps, {out.train_tokens / out.steps:.0f} real tokens/step, "
          f"{step_ms:.0f} ms/step (loop clock, profiler on); aten self time {total_ops / out.steps:.0f} ms/step\n")
    print("| stage | operator family | ms / step | share of aten time |\n|---|---|---|---|")
    rows = sorted(by_key.items(), key=lambda kv: -kv[1])
    for (s, f), ms in rows[: args.top]:
        print(f"| {s} | {f} | {ms / out.steps:.0f} | {100 * ms / total_ops:.1f} % |")
    rest = sum(ms for _, ms in rows[args.top:])
    if rest:
        print(f"| (rest) | | {rest / out.steps:.0f} | {100 * rest / total_ops:.1f} % |")
    print("\n| stage | ms / step | share |\n|---|---|---|")
    for s, ms in sorted(by_stage.items(), key=lambda kv: -kv[1]):
        print(f"| {s} | {ms / out.steps:.0f} | {100 * ms / total_ops:.1f} % |")
    if args.ops:
        print("\n| stage | operator | ms / step | share |\n|---|---|---|---|")
        for (s, name), ms in sorted(by_op.items(), key=lambda kv: -kv[1])[: args.ops]:
            print(f"| {s} | {name} | {ms / out.steps:.1f} | {100 * ms / total_ops:.1f} % |")
    if args.shapes:
        # the profiler counts 2*M*K*N for mm/addmm/bmm; a shape's rate says which products lose to the peak
        print("\n| stage | operator | operand shapes | calls / step | ms / step | GFLOP/s | share |")
        print("|---|---|---|---|---|---|---|")
        for (s, name, shapes), (ms, flops, calls) in sorted(by_shape.items(), key=lambda kv: -kv[1][0])[: args.shapes]:
            print(f"| {s} | {name} | {shapes} | {calls / out.steps:.0f} | {ms / out.steps:.1f} | "
                  f"{flops / ms / 1e6:.0f} | {100 * ms / total_ops:.1f} % |")


if __name__ == "__main__":
    main()
