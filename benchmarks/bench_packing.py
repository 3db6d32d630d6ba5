"""Packing against length buckets: does putting several sentences in one row save time? (issue 14)

Usage: ``python benchmarks/bench_packing.py [--task panx xnli] [--threads 2] [--rounds 4] [--bf16] [--loop]``

The training loop pads each batch to its longest sequence after sorting pools of 50 batches by
length (training/batching.py). Packing instead puts a batch's sequences end to end into as few
rows as it can, with position ids restarting at each sequence and a block-diagonal attention
mask, so that (almost) no position is padding. It does the same work on real tokens (exact up to
rounding: checked below in eval mode) but attends over longer rows, so it trades padding for
attention. This script measures that trade on the quickstart's own training batches (PAN-X: its
800 English sentences; XNLI: all 1,245 English training pairs; batch 32, seed 1), default model:

- **positions** each layout runs through the linear layers, and attention-score elements;
- **forward + backward time** of the encoder plus a token-level linear head (cross-entropy on
  every real token, fixed random labels) in train mode (dropout 0.1, PyTorch's own), one
  layout's batches after the other's, the order alternating per round (ABBA...), ``--rounds``
  rounds, each side's time summed over all batches of the epoch;
- **exactness**: in eval mode, every real token's last hidden state in the packed layout against
  the bucketed one (largest absolute difference).

``--loop`` times the training loop itself instead (:func:`xstilts.training.loop.train`, default
runtime with ``pack_sequences`` off and on, the quickstart's target hyperparameters: 2 epochs,
batch 32, lr 2e-4, seed 1), whole runs in ABBA order: what a run gains, optimizer, head and
collation included.

The word-embedding matrix is frozen on both sides of the encoder comparison (the loop trims it to the used rows, so its
gradient is small there; here it would add the same dense 96M-entry gradient to both layouts).

The packing is the package's own (:func:`xstilts.models.packing.pack`): per batch, every row
length from the batch's longest sequence to 128, packed first-fit-decreasing, the cheapest by
positions × (1 + row length / ``--kappa``) kept; ``--kappa inf`` keeps the fewest positions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xstilts.models.packing import KAPPA, unpack

REPO = Path(__file__).resolve().parents[1]
QUICKSTART_EXAMPLES = {"panx": 800, "xnli": None}  # configs/quickstart.toml's training caps


def quickstart_features(task_name: str, args: argparse.Namespace) -> tuple[Any, Any, list[dict]]:
    """(tokenizer, task, English training features capped as configs/quickstart.toml caps them)."""
    from xstilts.featurize import load_features
    from xstilts.models.loading import load_tokenizer
    from xstilts.tasks import get_task

    tok = load_tokenizer("default")
    task = get_task(task_name, data_dir=args.data_dir)
    cache = Path(os.environ.get("XSTILTS_BENCH_CACHE", "/tmp/xstilts-bench-cache"))
    _, feats = load_features(task, "train", "en", tok, 128, QUICKSTART_EXAMPLES[task_name], cache)
    return tok, task, feats


def bucketed(feats: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """The loop's layout: one row per sequence, padded to the batch's longest."""
    from xstilts.heads.base import pad

    ids = pad([f["input_ids"] for f in feats], pad_id)
    real = torch.arange(ids.shape[1]) < torch.tensor([len(f["input_ids"]) for f in feats])[:, None]
    return {"input_ids": ids, "attention_mask": real.long(), "real": real}


def real_states(encoder: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Last hidden states of the real tokens, [n_real, hidden], in the sequences' order."""
    if "packed" in batch:
        p = batch["packed"]
        states = encoder(input_ids=p.input_ids, position_ids=p.position_ids,
                         attention_mask=p.attention_mask).last_hidden_state
        return unpack(states, p)[batch["real"]]
    states = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    return states[batch["real"]]


def epoch_seconds(encoder: nn.Module, head: nn.Module, batches: list[dict], labels: list[torch.Tensor],
                  bf16: bool) -> float:
    """Forward + backward of every batch, gradients dropped after each (as zero_grad(set_to_none) does)."""
    started = time.perf_counter()
    for batch, y in zip(batches, labels, strict=True):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = head(real_states(encoder, batch))
        nn.functional.cross_entropy(logits.float(), y).backward()
        for p in (*encoder.parameters(), *head.parameters()):
            p.grad = None
    return time.perf_counter() - started


def measure(task_name: str, args: argparse.Namespace) -> dict:
    from xstilts.models.loading import load_encoder
    from xstilts.models.packing import pack
    from xstilts.training.batching import train_batches

    tok, _, feats = quickstart_features(task_name, args)
    lengths = [len(f["input_ids"]) for f in feats]
    index_batches = train_batches(lengths, 32, np.random.default_rng(1))
    padded = [bucketed([feats[i] for i in b], tok.pad_token_id) for b in index_batches]
    layouts = {"bucketed": padded,
               "packed": [{"packed": pack(b["input_ids"], b["attention_mask"], tok.pad_token_id, 0, 128, args.kappa),
                           "real": b["real"]} for b in padded]}
    shapes = {"bucketed": [b["input_ids"].shape for b in padded],
              "packed": [b["packed"].input_ids.shape for b in layouts["packed"]]}
    real = sum(lengths)
    positions = {k: sum(r * w for r, w in v) for k, v in shapes.items()}
    attention = {k: sum(r * w * w for r, w in v) for k, v in shapes.items()}

    torch.manual_seed(1)
    encoder = load_encoder("default")
    encoder.get_input_embeddings().weight.requires_grad_(False)
    head = nn.Linear(encoder.config.hidden_size, 7)
    gen = torch.Generator().manual_seed(2)
    labels = [torch.randint(0, 7, (sum(lengths[i] for i in b),), generator=gen) for b in index_batches]

    encoder.eval()
    with torch.no_grad():
        diff = max(float((real_states(encoder, p) - real_states(encoder, b)).abs().max())
                   for b, p in zip(layouts["bucketed"][:8], layouts["packed"][:8], strict=True))
    encoder.train()
    epoch_seconds(encoder, head, layouts["bucketed"][:2], labels[:2], args.bf16)  # warm-up, both layouts
    epoch_seconds(encoder, head, layouts["packed"][:2], labels[:2], args.bf16)
    times: dict[str, list[float]] = {"bucketed": [], "packed": []}
    for r in range(args.rounds):
        for name in (("bucketed", "packed") if r % 2 == 0 else ("packed", "bucketed")):
            times[name].append(epoch_seconds(encoder, head, layouts[name], labels, args.bf16))
        print(f"  {task_name} round {r + 1}: bucketed {times['bucketed'][-1]:.1f} s, packed {times['packed'][-1]:.1f} s, "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
    return {"task": task_name, "kappa": args.kappa, "sequences": len(feats), "batches": len(index_batches),
            "real_tokens": real,
            "positions": positions, "attention_elements": attention, "max_abs_diff_eval": diff,
            "seconds": times, "ratio_per_round": [b / p for b, p in zip(times["bucketed"], times["packed"], strict=True)]}


def measure_loop(task_name: str, args: argparse.Namespace) -> dict:
    """Seconds of training of whole runs of the loop, padded and packed, alternating."""
    import copy

    from xstilts.config import RuntimeConfig, TrainConfig
    from xstilts.heads import get_head_kind
    from xstilts.models.loading import load_encoder
    from xstilts.training.loop import Job, set_seed, train
    from xstilts.training.speed import prepare_encoder

    tok, task, feats = quickstart_features(task_name, args)
    kind = get_head_kind(task.head)
    base = load_encoder("default")
    steps = 2 * -(-len(feats) // 32)
    hp = TrainConfig(lr=2e-4, batch_size=32, max_steps=steps, eval_every=10**9)
    times: dict[str, list[float]] = {"bucketed": [], "packed": []}
    for r in range(args.rounds):
        for name in (("bucketed", "packed") if r % 2 == 0 else ("packed", "bucketed")):
            runtime = RuntimeConfig(progress=False, threads=args.threads, bf16=args.bf16,
                                    pack_sequences=name == "packed")
            set_seed(1)
            encoder = copy.deepcopy(base)
            head = kind.build(task, encoder.config.hidden_size, 0.1)
            prepare_encoder(encoder, runtime, [feats], tok.pad_token_id)
            out = train(encoder, [Job(task.name, kind, head, feats)], hp, runtime, 1, tok.pad_token_id,
                        lambda step: 0.0)
            times[name].append(out.train_seconds)
        print(f"  {task_name} loop round {r + 1}: bucketed {times['bucketed'][-1]:.1f} s, "
              f"packed {times['packed'][-1]:.1f} s ({steps} steps), load {os.getloadavg()[0]:.2f}", flush=True)
    return {"task": task_name, "loop": True, "sequences": len(feats), "steps": steps, "seconds": times,
            "ratio_per_round": [b / p for b, p in zip(times["bucketed"], times["packed"], strict=True)]}


def _print_layouts(results: list[dict]) -> None:
    print("\n| task | real tokens | positions bucketed / packed | attention elements packed / bucketed "
          "| eval max abs diff | s per epoch bucketed / packed (median) | bucketed / packed: ratio of medians "
          "| median of the rounds' ratios |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        pb, pp = r["positions"]["bucketed"], r["positions"]["packed"]
        ab, ap_ = r["attention_elements"]["bucketed"], r["attention_elements"]["packed"]
        tb, tp = statistics.median(r["seconds"]["bucketed"]), statistics.median(r["seconds"]["packed"])
        ratios = ", ".join(f"{x:.2f}" for x in r["ratio_per_round"])
        print(f"| {r['task']} | {r['real_tokens']:,} | {pb:,} / {pp:,} ({pb / r['real_tokens']:.3f} / "
              f"{pp / r['real_tokens']:.3f} of real) | {ap_ / ab:.2f}× | {r['max_abs_diff_eval']:.1e} "
              f"| {tb:.1f} / {tp:.1f} | {tb / tp:.2f}× | **{statistics.median(r['ratio_per_round']):.2f}×** "
              f"(rounds: {ratios}) |")


def _print_loop(results: list[dict]) -> None:
    print("\n| task | steps | s of training bucketed / packed (median) | median of the rounds' ratios |")
    print("|---|---|---|---|")
    for r in results:
        tb, tp = statistics.median(r["seconds"]["bucketed"]), statistics.median(r["seconds"]["packed"])
        ratios = ", ".join(f"{x:.2f}" for x in r["ratio_per_round"])
        print(f"| {r['task']} | {r['steps']} | {tb:.1f} / {tp:.1f} | **{statistics.median(r['ratio_per_round']):.2f}×** "
              f"(rounds: {ratios}) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=REPO / ".." / "shared" / "data")
    ap.add_argument("--task", nargs="+", default=["panx", "xnli"], choices=sorted(QUICKSTART_EXAMPLES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast on both sides")
    ap.add_argument("--kappa", type=float, default=KAPPA,
                    help="packing's cost weight (models/packing.py); inf = fewest positions")
    ap.add_argument("--loop", action="store_true", help="time whole runs of the training loop instead")
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{args.threads} threads, {'bf16 autocast' if args.bf16 else 'fp32'}, load {os.getloadavg()[0]:.2f}")
    if args.loop:
        results = [measure_loop(t, args) for t in args.task]
        _print_loop(results)
    else:
        results = [measure(t, args) for t in args.task]
        _print_layouts(results)
    if args.out:
        args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                        "threads": args.threads, "bf16": args.bf16, "results": results}, indent=1))


if __name__ == "__main__":
    main()
