"""Where a GPU training step's time goes when it does not grow with the model: launch, sync, step.

``bench_gpu.py`` measured the same ~200 ms per step for a 12-layer hidden-384 model and a 24-layer
hidden-1024 one on an H200 (both sides, xstilts and the Trainer). A step whose time does not depend
on its arithmetic is bound by something per kernel or per step: this script times, on one device,

- ``launch_us``: one tiny kernel (``x.add_(1)`` on 1,024 floats), 2,000 launches, one sync at the end;
- ``sync_us``: a tiny kernel followed by ``torch.cuda.synchronize()``, 200 times;
- ``item_us``: a tiny kernel followed by ``.item()`` (what a loop's ``float(loss)`` does), 200 times;
- ``e5-small_step_ms``: forward + backward + fused AdamW of a random BertModel of the default model's
  shape (``--large`` adds XLM-R large's), bf16 autocast, batch 32 × 40 tokens, vocabulary 8,000,
  5 warm-up + 20 timed steps, one sync at the end; ``kernels_per_step`` and ``aten_ops_per_step`` from
  the profiler over one more step; then the default model's step with one thing changed:
  ``_vocab250k`` (the full 250,037-row embedding in the optimizer), ``_varied_lengths`` (a new padded
  width, 12 to 71, every step, as length-bucketed dynamic padding gives), ``_clip_item`` (gradient
  clipping and a ``float(loss)`` every step) and ``_all_three`` (all three; its widths were already
  seen by ``_varied_lengths`` in this process, so per-shape caches are warm);
- ``matmul_tflops``: a 4096³ bf16 product, 20 times, for the device's arithmetic ceiling.

Run: ``python benchmarks/gpu_overhead.py [--json FILE]``. It also runs on a CPU (small numbers, to check
the script). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def timed(fn, n: int, sync) -> float:
    """Seconds per call of ``fn`` over ``n`` calls after 5 untimed ones, synchronised at both ends."""
    for _ in range(5):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return (time.perf_counter() - t0) / n


def time_step(dev, sync, shape: dict, vocab: int, vary: bool, clip_item: bool,
              profile_it: bool) -> tuple[float, dict[str, int]]:
    """ms per training step of a random BertModel; with ``profile_it`` also launches and aten ops per step."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=vocab, **shape)).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=dev.type == "cuda")
    # varied: a new padded width (12..71) every step, as length-bucketed dynamic padding gives
    batches = [torch.randint(5, 8000, (32, 12 + (7 * i) % 60 if vary else 40), device=dev) for i in range(60)]
    calls = [0]

    def step() -> None:
        ids = batches[calls[0] % len(batches)]
        calls[0] += 1
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = model(input_ids=ids).last_hidden_state.float().pow(2).mean()
        loss.backward()
        if clip_item:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if clip_item:
            float(loss)

    step_ms = 1e3 * timed(step, 20 if dev.type == "cuda" else 2, sync)
    counts: dict[str, int] = {}
    if profile_it:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
        with profile(activities=acts) as prof:
            step()
            sync()
        events = prof.key_averages()
        counts["kernels_per_step"] = sum(e.count for e in events if e.key.startswith("cuda") and "Launch" in e.key)
        counts["aten_ops_per_step"] = sum(e.count for e in events if e.key.startswith("aten::"))
    return step_ms, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--large", action="store_true", help="also time XLM-R large's shape")
    args = ap.parse_args()

    import torch

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    out: dict[str, object] = {"device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
                              "torch": torch.__version__, "threads": torch.get_num_threads()}
    x = torch.zeros(1024, device=dev)
    out["launch_us"] = 1e6 * timed(lambda: x.add_(1), 2000, sync)

    def add_sync() -> None:
        x.add_(1)
        sync()

    out["sync_us"] = 1e6 * timed(add_sync, 200, sync)
    out["item_us"] = 1e6 * timed(lambda: x.add_(1)[0].item(), 200, sync)
    a = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)
    n_mm = 20 if dev.type == "cuda" else 1
    out["matmul_tflops"] = 2 * 4096**3 / timed(lambda: a @ a, n_mm, sync) / 1e12

    shapes = {"e5-small": dict(num_hidden_layers=12, hidden_size=384, num_attention_heads=12,
                               intermediate_size=1536)}
    if args.large:
        shapes["xlmr-large"] = dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16,
                                    intermediate_size=4096)
    variants = {"": (8000, False, False), "_vocab250k": (250037, False, False),
                "_varied_lengths": (8000, True, False), "_clip_item": (8000, False, True),
                "_all_three": (250037, True, True)}
    for name, shape in shapes.items():
        for suffix, (vocab, vary, clip_item) in variants.items():
            if suffix and name != "e5-small":
                continue
            step_ms, counts = time_step(dev, sync, shape, vocab, vary, clip_item, profile_it=not suffix)
            out[f"{name}{suffix}_step_ms"] = step_ms
            out.update({f"{name}_{k}": v for k, v in counts.items()})
    text = json.dumps(out, indent=1)
    print(text, flush=True)
    if args.json:
        args.json.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
