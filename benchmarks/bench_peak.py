"""Matmul peak of this machine, and the fraction of it the xstilts training step achieves.

Usage: ``python benchmarks/bench_peak.py [--task panx|xnli] [--threads N] [--rounds 6] [--steps 6] [--bf16-step]
[--runtime JSON]``

1. **Peak**: GFLOP/s of ``torch.matmul`` in fp32 and bf16 (bf16 where the CPU runs it natively),
   and in fp32 of oneDNN's inner product too wherever this PyTorch has it, whether or not the
   loop's linear layers use it (``runtime.onednn_linear``: faster than MKL on the Zen 4 machine
   measured, slower on the Zen 1), and of OpenBLAS's sgemm wherever models/openblas.py is built
   (``runtime.openblas_linear``), so the peak is the best library's, 2·m·n·k FLOPs per product, over
   several shapes: large squares (2048³, 3072³) and the default
   model's own products at 1,024 tokens (Q/K/V/output 384→384, feed-forward 384→1536 and
   1536→384). **The peak is the best of every shape and trial**, not a median: a median peak is
   one the training step's own matmuls can exceed (they did: 164 vs 145.7 GFLOP/s, issue 14), and
   a fraction of it overstates the step.
2. **Training step**: the xstilts loop (:func:`xstilts.training.loop.train`, default runtime:
   length buckets, trimmed vocabulary) on real English training examples of ``--task`` (PAN-X by
   default; XNLI's sentence pairs are three times as long) with the default model.
   FLOPs are counted analytically from the padded batch shapes the loop actually ran:
   ``6 × (parameters in matmuls) × tokens`` plus attention ``12 × L × hidden × layers`` per token
   (QKᵀ and AV, forward and backward), embedding lookups and element-wise work excluded.
   Where the last layer computed the first token alone (sentence-level heads, XNLI:
   ``runtime.first_token_train``, on by default) only what it computed is counted -- keys and values
   of every position, the rest for ``<s>`` -- so skipped work never counts as achieved.
   Achieved FLOP/s = those FLOPs / the loop's measured step time.
3. **The step's products alone** (:func:`gemm_floor`): every matrix product of the encoder's
   forward and backward pass at the batch shapes the loop ran, timed with nothing between them.
   Their rate against the peak says what the shapes allow; their time against the step's says how
   much of the step is anything else.

``--runtime`` sets runtime switches for the step (e.g. ``'{"pack_sequences": true}'``, opt-in and in
run ids). With ``pack_sequences`` the encoder computes packed rows, and with ``unpad`` its layers the
real tokens alone, not the padded batch shapes recorded here, so only the real-token figures are
reported: the FLOPs computed and the products alone would be counted at the wrong shapes.

``--runs-at-once N`` measures the step as a grid trains by default (``runtime.parallel_runs``): N
copies of this benchmark at once, one thread each, each reporting its step against the peak of its
own core (measured while the other copies run); the machine's figure is their summed useful FLOP/s
against the larger of their summed per-core peaks and the all-thread peak measured right after them.

Other engineers share the 2 CPUs, so peak trials and training chunks are interleaved (one peak
trial of each kind, then one chunk of ``--steps`` steps, ``--rounds`` times) and both the median
and the best round are reported: contention then hits both sides alike.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _fresh import fresh
from torch import nn

from xstilts.models import linear, openblas
from xstilts.models.linear import inner_product

REPO = Path(__file__).resolve().parents[1]


def matmul_gflops(m: int, n: int, k: int, dtype: torch.dtype, seconds: float = 1.0, library: str = "torch") -> float:
    """GFLOP/s of repeated (m×k)·(k×n) products for about ``seconds`` (after one warm-up); ``library``
    "onednn": through oneDNN's inner product instead of ``torch.matmul``, "openblas": through
    models/openblas.py's sgemm (as the loop's linear layers call it)."""
    a = torch.randn(m, k).to(dtype)
    b = torch.randn(k, n).to(dtype)
    out = torch.empty(m, n, dtype=dtype)
    w = b.t().contiguous()  # a linear layer's weight, [out, in]

    def product() -> None:
        if library == "onednn":
            inner_product(a, w)
        elif library == "openblas":
            openblas.linear(a, w)
        else:
            torch.matmul(a, b, out=out)

    product()
    reps, started = 0, time.perf_counter()
    while True:
        product()
        reps += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return 2 * m * n * k * reps / elapsed / 1e9


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}

SHAPES = {  # (m, n, k): m×k times k×n
    "2048^3": (2048, 2048, 2048),
    "3072^3": (3072, 3072, 3072),
    "1024x384->384": (1024, 384, 384),
    "1024x384->1536": (1024, 1536, 384),
    "1024x1536->384": (1024, 384, 1536),
}


def peak_trial(peaks: dict[str, list[float]], precision: str, onednn: bool) -> None:
    """One trial of every shape in ``precision`` (fp32 through oneDNN too, with ``onednn``, and
    through OpenBLAS wherever models/openblas.py is built, used or not), each appended to ``peaks``
    under its name ("fp32 2048^3", "fp32 oneDNN 2048^3", "fp32 OpenBLAS 2048^3", ...)."""
    for shape_name, shape in SHAPES.items():
        peaks.setdefault(f"{precision} {shape_name}", []).append(matmul_gflops(*shape, DTYPES[precision], 0.5))
        if precision == "fp32" and onednn:
            peaks.setdefault(f"fp32 oneDNN {shape_name}", []).append(
                matmul_gflops(*shape, DTYPES[precision], 0.5, library="onednn"))
        if precision == "fp32" and openblas.available():
            peaks.setdefault(f"fp32 OpenBLAS {shape_name}", []).append(
                matmul_gflops(*shape, DTYPES[precision], 0.5, library="openblas"))


def best_peak(peaks: dict[str, list[float]], precision: str) -> tuple[float, str]:
    """The best GFLOP/s of any shape and trial in ``precision``, and which shape gave it."""
    return max((max(v), k) for k, v in peaks.items() if k.startswith(precision + " "))


def matmul_params(encoder: nn.Module, head: nn.Module) -> int:
    """Weights that take part in matmuls: every Linear of the encoder's layers and of the head."""
    layers = encoder.encoder if hasattr(encoder, "encoder") else encoder
    return sum(m.weight.numel() for mod in (layers, head) for m in mod.modules() if isinstance(m, nn.Linear))


def step_flops(shapes: list[tuple[int, int]], p_mm: int, hidden: int, n_layers: int) -> float:
    """Training FLOPs of batches of (batch, padded length): 6·P·tokens + 12·L·H·layers·tokens."""
    return float(sum(b * length * (6 * p_mm + 12 * length * hidden * n_layers) for b, length in shapes))


# linears the first-token shortcut still computes for every position: attention needs all keys and values
ALL_ROWS = ("attention.self.key", "attention.self.value")


def layer_linears(encoder: nn.Module) -> list[tuple[str, int, int]]:
    """(name, in, out) of every Linear in the encoder's first layer (all layers have the same)."""
    layers = encoder.encoder.layer if hasattr(encoder, "encoder") else encoder.layer
    return [(name, m.in_features, m.out_features) for name, m in layers[0].named_modules()
            if isinstance(m, nn.Linear)]


def skipped_flops(shapes: list[tuple[int, int]], linears: list[tuple[str, int, int]], hidden: int) -> float:
    """Training FLOPs the last layer skips for batches of (batch, length) when it computes ``<s>`` alone:
    every linear but keys and values, and attention, for the other length - 1 rows."""
    p_rows = sum(k * n for name, k, n in linears if name not in ALL_ROWS)
    return float(sum(b * (length - 1) * (6 * p_rows + 12 * length * hidden) for b, length in shapes))


def layer_products(b: int, length: int, rows: int, linears: list[tuple[str, int, int]], hidden: int,
                   heads: int, dtype: torch.dtype, use_onednn: bool = False,
                   ) -> tuple[list[tuple[torch.Tensor, torch.Tensor, bool]], float]:
    """The matrix products of one layer's forward and backward pass, and their FLOPs, for ``b``
    sequences of ``length`` positions of which ``rows`` are computed (the length, or 1 for ``<s>``
    alone: keys and values still for every position). Each product is (a, b, through oneDNN): with
    ``use_onednn`` a linear's forward and input gradient are, as the loop computes them in fp32."""
    head_dim = hidden // heads
    products, flops = [], 0.0
    for name, k, n in linears:
        m = b * (length if name in ALL_ROWS else rows)
        x, w, dy = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype), torch.randn(m, n, dtype=dtype)
        # forward, input gradient, weight gradient (the last through MKL either way: models/linear.py)
        products += [(x, w, use_onednn), (dy, w.t(), use_onednn), (x.t(), dy, False)]
        flops += 6 * m * k * n
    q = torch.randn(b * heads, rows, head_dim, dtype=dtype)
    k_, v = (torch.randn(b * heads, length, head_dim, dtype=dtype) for _ in range(2))
    p = torch.randn(b * heads, rows, length, dtype=dtype)
    products += [(q, k_.transpose(1, 2), False), (p, k_, False), (p.transpose(1, 2), q, False),  # QKᵀ, gradients
                 (p, v, False), (q, v.transpose(1, 2), False), (p.transpose(1, 2), q, False)]  # AV, gradients
    return products, flops + 12 * b * rows * length * hidden


def gemm_floor(shapes: list[tuple[int, int]], last_rows: list[int], linears: list[tuple[str, int, int]],
               hidden: int, heads: int, n_layers: int, dtype: torch.dtype, reps: int = 3,
               use_onednn: bool = False) -> tuple[float, float]:
    """(FLOPs, seconds) of the encoder's matrix products alone for batches of (batch, padded length).

    Why: the fraction of the peak multiplies two things -- how fast the step's own products run at
    its shapes (small batches of short sentences are far from the best shape), and how much of the
    step is products at all. Timing exactly the products a step makes (per layer: each linear's
    forward, input-gradient and weight-gradient products; QKᵀ and AV with their two gradient products
    each), with nothing else between them, separates the two. Best of ``reps`` per shape, one layer
    timed and multiplied by the layers of its shape: all alike, unless the last computed ``<s>`` alone
    (``last_rows``: the rows the last layer computed per batch).
    """
    flops = seconds = 0.0
    for (b, length), rows in zip(shapes, last_rows, strict=True):
        layers = [(n_layers - 1, length), (1, rows)] if rows != length else [(n_layers, length)]
        for count, computed in layers:
            products, layer_flops = layer_products(b, length, computed, linears, hidden, heads, dtype, use_onednn)
            best = math.inf
            for _ in range(reps):
                started = time.perf_counter()
                for a, c, dnn in products:
                    inner_product(a, c.t()) if dnn else torch.matmul(a, c)
                best = min(best, time.perf_counter() - started)
            seconds += best * count
            flops += layer_flops * count
    return flops, seconds


class RecordingHead(nn.Module):
    """Wraps a head to record the padded (batch, length) shape of every batch it is given, the real
    length of each of its sequences, and how many rows the encoder's last layer computed for it."""

    def __init__(self, inner: nn.Module, encoder: nn.Module):
        super().__init__()
        self.inner = inner
        self.shapes: list[tuple[int, int]] = []
        self.real: list[list[int]] = []  # real lengths, per batch
        self.last_rows: list[int] = []  # rows of the last layer's output, per batch
        layers = encoder.encoder.layer if hasattr(encoder, "encoder") else encoder.layer
        # the last layer's final norm: unpadded layers (models/unpadding.py) call it, not the layer
        layers[-1].output.LayerNorm.register_forward_hook(self._rows)

    def _rows(self, module: nn.Module, inputs: Any, output: Any) -> None:
        out = output[0] if isinstance(output, tuple) else output
        # [batch, rows, hidden]; unpadded, [real tokens, hidden]: every row of the batch's length
        self.last_rows.append(int(out.shape[1]) if out.dim() == 3 else self.shapes[-1][1])

    def forward(self, encoder: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        b, length = batch["input_ids"].shape[:2]
        self.shapes.append((int(b), int(length)))
        self.real.append([int(n) for n in batch["attention_mask"].sum(dim=1).tolist()])
        return self.inner(encoder, batch)


def computed_flops(shapes: list[tuple[int, int]], last_rows: list[int], p_mm: int,
                   linears: list[tuple[str, int, int]], hidden: int, n_layers: int) -> float:
    """:func:`step_flops` less what the last layer skipped in the batches where it computed ``<s>`` alone."""
    assert len(shapes) == len(last_rows), "one last-layer forward per batch"
    cut = [shape for shape, rows in zip(shapes, last_rows, strict=True) if rows == 1 and shape[1] > 1]
    return step_flops(shapes, p_mm, hidden, n_layers) - skipped_flops(cut, linears, hidden)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=REPO / ".." / "shared" / "data")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: PyTorch's)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=6, help="training steps per round")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--bf16-step", action="store_true", help="also time the step under bf16 autocast")
    ap.add_argument("--task", default="panx", help="whose English training examples the step trains on")
    ap.add_argument("--json", type=Path, default=None, help="write the numbers here too")
    ap.add_argument("--runtime", default="{}", help="RuntimeConfig overrides for the step, as JSON")
    ap.add_argument("--runs-at-once", type=int, default=1,
                    help="N copies at once, one thread each, as a pool of N runs trains (see the docstring)")
    args = ap.parse_args()
    if args.runs_at_once > 1:
        at_once(args)
        return
    if args.threads:
        torch.set_num_threads(args.threads)

    from xstilts.config import RuntimeConfig, TrainConfig
    from xstilts.training.loop import Job, train
    from xstilts.training.speed import prepare_encoder

    # a pool as large as the loop's bucketing pool (50 batches), so batches are as well bucketed as in a run
    n_examples = max(50 * args.batch_size, args.rounds * args.steps * args.batch_size)
    tok, task, kind, feats, encoder, head = fresh(args.task, n_examples, args.data_dir)
    cfg = encoder.config
    head = RecordingHead(head, encoder)
    p_mm = matmul_params(encoder, head)
    precisions = ["fp32", "bf16"] if args.bf16_step else ["fp32"]
    overrides = json.loads(args.runtime)
    runtimes = {p: RuntimeConfig(**{"progress": False, **overrides, "bf16": p == "bf16"}) for p in precisions}
    setup = prepare_encoder(encoder, runtimes["fp32"], [feats], tok.pad_token_id)
    # the encoder computes packed rows or unpadded layers, not the padded shapes recorded
    reshaped = runtimes["fp32"].pack_sequences or setup.unpadded > 0
    head.last_rows.clear()  # the forward passes of packing's check (pack_sequences) are not training batches
    dnn = setup.onednn_linear > 0  # the loop's fp32 linear layers go through oneDNN (models/linear.py)
    dnn_peak = linear.available()  # the peak counts oneDNN's products wherever they exist, used or not
    hp = TrainConfig(lr=5e-5, batch_size=args.batch_size, max_steps=args.steps, eval_every=10**9)

    peaks: dict[str, list[float]] = {}
    steps: dict[str, list[tuple[float, float, int, float]]] = {p: [] for p in precisions}
    floors: dict[str, list[tuple[float, float]]] = {p: [] for p in precisions}  # (FLOPs, s) per round
    linears = layer_linears(encoder)
    shapes_seen = 0
    shortcut_batches = {p: [0, 0] for p in precisions}  # batches whose last layer computed <s> alone, of all
    for r in range(args.rounds):
        for p in precisions:
            peak_trial(peaks, p, dnn_peak)
        for p in precisions:
            out = train(encoder, [Job(task.name, kind, head, feats)], hp, runtimes[p], r, tok.pad_token_id,
                        lambda step: 0.0)
            shapes, rows = head.shapes[shapes_seen:], head.last_rows[shapes_seen:]
            # each sequence alone at its real length, its batch's last-layer rows
            real = [((1, n), 1 if r == 1 else n) for lengths, r in zip(head.real[shapes_seen:], rows, strict=True)
                    for n in lengths]
            shapes_seen = len(head.shapes)
            dims = (p_mm, linears, cfg.hidden_size, cfg.num_hidden_layers)
            steps[p].append((computed_flops(shapes, rows, *dims), out.train_seconds, out.train_tokens,
                             computed_flops([s for s, _ in real], [r for _, r in real], *dims)))
            shortcut_batches[p][0] += sum(r == 1 for r in rows)
            shortcut_batches[p][1] += len(rows)
            if not reshaped:
                floors[p].append(gemm_floor(shapes, rows, linears, cfg.hidden_size, cfg.num_attention_heads,
                                            cfg.num_hidden_layers, DTYPES[p], use_onednn=dnn and p == "fp32"))
        rates = ", ".join(f"step {p} {s[-1][3 if reshaped else 0] / s[-1][1] / 1e9:.1f} {'useful ' * reshaped}GFLOP/s"
                          for p, s in steps.items())
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in peaks.items())
              + " | " + rates, flush=True)

    def summary(values: list[float]) -> dict[str, float]:
        return {"median": statistics.median(values), "best": max(values)}

    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} threads, "
                   f"cpu capability {torch.backends.cpu.get_cpu_capability()}",
        "load_average": os.getloadavg(),
        "task": task.name,
        "runtime": overrides,
        "matmul_params": p_mm,
        "peak_gflops": {k: summary(v) for k, v in peaks.items()},
        "step": {},
    }
    for p, rows in steps.items():
        peak, shape = best_peak(peaks, p)
        useful = [fr / s / 1e9 for _, s, _, fr in rows]
        step: dict[str, Any] = {"best_peak_gflops": peak, "best_peak_shape": shape}
        if not reshaped:  # FLOPs computed, at the recorded batch shapes
            step["achieved_gflops"] = summary([f / s / 1e9 for f, s, *_ in rows])
        step.update({
            "useful_gflops_real_tokens_only": summary(useful),
            "useful_fraction_of_best_peak": summary([u / peak for u in useful]),
            "real_tokens_per_s": summary([t / s for _, s, t, _ in rows]),
            "batches_last_layer_first_token_only": shortcut_batches[p][0],
            "batches": shortcut_batches[p][1],
        })
        if not reshaped:  # the same rounds' batch shapes, their encoder products alone (gemm_floor)
            step.update({
                "products_alone_gflops": summary([f / s / 1e9 for f, s in floors[p]]),
                "products_alone_fraction_of_best_peak": summary([f / s / 1e9 / peak for f, s in floors[p]]),
                "products_alone_share_of_step_time": summary([s / row[1] for (_, s), row in zip(floors[p], rows,
                                                                                                strict=True)]),
            })
        result["step"][p] = step
    real_positions = sum(sum(lengths) for lengths in head.real)
    if not runtimes["fp32"].pack_sequences:  # of the padded batches: packed rows are not recorded
        result["real_share_of_padded_positions"] = real_positions / sum(b * length for b, length in head.shapes)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print("\n| quantity | median | best round |\n|---|---|---|")
    for k, v in result["peak_gflops"].items():
        print(f"| matmul {k} GFLOP/s | {v['median']:.1f} | {v['best']:.1f} |")
    for p, v in result["step"].items():
        if not reshaped:
            print(f"| training step ({p}) achieved GFLOP/s | {v['achieved_gflops']['median']:.1f} | "
                  f"{v['achieved_gflops']['best']:.1f} |")
        print(f"| training step ({p}) useful GFLOP/s (real tokens only) | "
              f"{v['useful_gflops_real_tokens_only']['median']:.1f} | "
              f"{v['useful_gflops_real_tokens_only']['best']:.1f} |")
        print(f"| training step ({p}) on real tokens / best {p} peak ({v['best_peak_gflops']:.1f}, "
              f"{v['best_peak_shape']}) | {100 * v['useful_fraction_of_best_peak']['median']:.0f} % | "
              f"{100 * v['useful_fraction_of_best_peak']['best']:.0f} % |")
        print(f"| training step ({p}) real tokens/s | {v['real_tokens_per_s']['median']:.0f} | "
              f"{v['real_tokens_per_s']['best']:.0f} |")
        if reshaped:
            continue
        print(f"| the step's encoder products alone ({p}), GFLOP/s | {v['products_alone_gflops']['median']:.1f} | "
              f"{v['products_alone_gflops']['best']:.1f} |")
        print(f"| ... as a fraction of the best {p} peak | "
              f"{100 * v['products_alone_fraction_of_best_peak']['median']:.0f} % | "
              f"{100 * v['products_alone_fraction_of_best_peak']['best']:.0f} % |")
        print(f"| ... their time as a share of the step's | "
              f"{100 * v['products_alone_share_of_step_time']['median']:.0f} % | "
              f"{100 * v['products_alone_share_of_step_time']['best']:.0f} % |")
    for p, v in result["step"].items():
        print(f"\n{p}: the last layer computed <s> alone in {v['batches_last_layer_first_token_only']} of "
              f"{v['batches']} batches (their skipped work not counted)")
    if not runtimes["fp32"].pack_sequences:
        what = ("the padded batches' positions (the unpadded layers computed the real tokens alone)"
                if setup.unpadded else "the positions computed")
        print(f"\nreal tokens were {100 * result['real_share_of_padded_positions']:.1f} % of {what}")
    print(f"\nload average at the end: {os.getloadavg()}")


def at_once(args: argparse.Namespace) -> None:
    """``--runs-at-once``: the copies, then the all-thread peak, then one table of both."""
    common = ["--task", args.task, "--rounds", str(args.rounds), "--steps", str(args.steps),
              "--batch-size", str(args.batch_size), "--data-dir", str(args.data_dir), "--threads", "1"]
    common += ["--bf16-step"] if args.bf16_step else []
    common += ["--runtime", args.runtime]
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"run{i}.json" for i in range(args.runs_at_once)]
        logs = [Path(tmp) / f"run{i}.out" for i in range(args.runs_at_once)]
        procs = []
        for path, log in zip(paths, logs, strict=True):
            with log.open("w") as out:
                procs.append(subprocess.Popen([sys.executable, __file__, *common, "--json", str(path)],
                                              stdout=out, stderr=subprocess.STDOUT))
        for proc, log in zip(procs, logs, strict=True):
            if proc.wait() != 0:
                for other in procs:
                    other.kill()  # the others would run on alone, for nothing
                sys.exit(f"bench_peak: a copy failed (exit {proc.returncode}):\n"
                         + "\n".join(log.read_text().splitlines()[-15:]))
        runs = [json.loads(path.read_text()) for path in paths]
    # the machine's peak on all its threads, right after the copies (best of 3 trials per shape)
    all_threads: dict[str, list[float]] = {}
    for _ in range(3):
        for p in runs[0]["step"]:
            peak_trial(all_threads, p, linear.available())
    machine = {p: best_peak(all_threads, p)[0] for p in runs[0]["step"]}
    result: dict[str, Any] = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}, "
                                         f"{args.runs_at_once} copies at once, 1 thread each",
                              "task": args.task, "runs": runs, "all_thread_peak_gflops": machine, "combined": {}}
    print(f"\n| {args.task}, {args.runs_at_once} copies at once, 1 thread each | median | best round |\n|---|---|---|")
    for p in runs[0]["step"]:
        steps = [run["step"][p] for run in runs]
        for i, v in enumerate(steps):
            print(f"| copy {i + 1}: step ({p}) on real tokens / its core's best peak ({v['best_peak_gflops']:.1f}) "
                  f"| {100 * v['useful_fraction_of_best_peak']['median']:.0f} % "
                  f"| {100 * v['useful_fraction_of_best_peak']['best']:.0f} % |")
        per_core = sum(v["best_peak_gflops"] for v in steps)
        peak = max(per_core, machine[p])
        useful = {k: sum(v["useful_gflops_real_tokens_only"][k] for v in steps) for k in ("median", "best")}
        tokens = {k: sum(v["real_tokens_per_s"][k] for v in steps) for k in ("median", "best")}
        result["combined"][p] = {"useful_gflops_real_tokens_only": useful, "real_tokens_per_s": tokens,
                                 "summed_core_peaks_gflops": per_core, "peak_gflops": peak,
                                 "useful_fraction_of_peak": {k: u / peak for k, u in useful.items()}}
        print(f"| all copies, summed: useful GFLOP/s ({p}, real tokens only) | {useful['median']:.1f} | "
              f"{useful['best']:.1f} |")
        print(f"| all copies, summed: step ({p}) on real tokens / the machine's peak ({peak:.1f}: the larger of the "
              f"summed cores' {per_core:.1f} and all threads' {machine[p]:.1f}) | {100 * useful['median'] / peak:.0f} % "
              f"| {100 * useful['best'] / peak:.0f} % |")
        print(f"| all copies, summed: real tokens/s ({p}) | {tokens['median']:.0f} | {tokens['best']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(f"\nload average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
