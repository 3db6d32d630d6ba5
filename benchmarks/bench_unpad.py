"""The encoder padded against unpadded (``runtime.unpad``), batch by batch, in one process.

Usage: ``python benchmarks/bench_unpad.py [--task panx] [--threads 1] [--train-examples 1200]
[--eval-languages en,de] [--eval-examples 300] [--bf16] [--one-pass] [--first-token]
[--runtime '{"fast_dropout": true}']``

Why this shape: a machine's speed drifts by a few percent between minutes (benchmarks/RESULTS.md),
about the size of what unpadding saves, so two runs one after the other cannot tell them apart.
Here two copies of the default model -- one prepared with ``unpad = false``, one with ``unpad = true``
(every other runtime switch at its default or as ``--runtime`` sets it) -- take every batch in turn, the order alternating
batch by batch, so drift falls on both.

Training: one epoch of the task's English training batches as the loop forms them (length buckets,
``training/batching.py``), a forward, backward and fused AdamW step per batch and side, after an
untimed epoch that warms both. Evaluation: each language's dev batches as evaluation forms them
(longest first), forward passes without gradients, after an untimed pass. ``--one-pass`` pools the
languages into one set batched as ``evaluation/predict.py`` batches it (``runtime.eval_one_pass``: full,
barely padded batches); ``--first-token`` computes the last layer for ``<s>`` alone, as sentence-level
heads do (``models/first_token.py``); ``--runtime`` sets other runtime switches on both copies.
Printed: the real-token share of the positions, seconds per side, and the ratio padded / unpadded.

Its limit: on batches with almost no padding (XNLI's: 2 % of positions) this in-process A/B put
unpadding at no cost in evaluation (0.99-1.00×) and 5 % faster in training, yet whole runs of the
study's grid, one process per side in alternating order, were 3-7 % slower to evaluate and 2-4 %
slower to train unpadded (benchmarks/RESULTS.md, thirty-fifth session). Judge a threshold (the
default ``runtime.unpad_min_padding`` 0.05 applies here too; ``--runtime '{"unpad_min_padding": 0}'``
unpads every padded batch) by whole runs, not by this alone.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def tensors(feats: list[dict], batch: list[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The padded ids and attention mask of a batch of features."""
    length = max(len(feats[i]["input_ids"]) for i in batch)
    ids = torch.full((len(batch), length), pad_id)
    mask = torch.zeros((len(batch), length), dtype=torch.long)
    for row, i in enumerate(batch):
        n = len(feats[i]["input_ids"])
        ids[row, :n] = torch.tensor(feats[i]["input_ids"])
        mask[row, :n] = 1
    return ids, mask


def alternate(sides: dict[bool, object], batches: list, run) -> dict[bool, float]:
    """Seconds per side of ``run(side, batch)`` over all batches, which side goes first alternating."""
    seconds = {False: 0.0, True: 0.0}
    for k, batch in enumerate(batches):
        for unpad in ((False, True) if k % 2 == 0 else (True, False)):
            started = time.perf_counter()
            run(sides[unpad], batch)
            seconds[unpad] += time.perf_counter() - started
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=REPO / ".." / "shared" / "data")
    ap.add_argument("--task", default="panx", help="a task whose head reads every token or <s> (panx, xnli, ...)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-examples", type=int, default=1200)
    ap.add_argument("--eval-languages", default="en,de")
    ap.add_argument("--eval-examples", type=int, default=300, help="per language")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast on both sides")
    ap.add_argument("--one-pass", action="store_true", help="the languages' dev sets as one pass, as evaluation runs them")
    ap.add_argument("--first-token", action="store_true", help="the last layer for <s> alone (sentence-level heads)")
    ap.add_argument("--runtime", default="{}", help='other runtime switches for both sides (JSON)')
    args = ap.parse_args()

    from xstilts.config import RuntimeConfig
    from xstilts.featurize import load_features
    from xstilts.models import draws
    from xstilts.models.first_token import first_token_only
    from xstilts.models.loading import load_encoder, load_tokenizer
    from xstilts.tasks import get_task
    from xstilts.training.batching import eval_batches, train_batches
    from xstilts.training.speed import prepare_encoder

    torch.set_num_threads(args.threads)
    tok = load_tokenizer("default")
    task = get_task(args.task, data_dir=args.data_dir)
    cache = Path(os.environ.get("XSTILTS_BENCH_CACHE", "/tmp/xstilts-bench-cache"))
    _, train_feats = load_features(task, "train", "en", tok, 128, args.train_examples, cache)
    evals = {lang: load_features(task, "eval", lang, tok, 128, args.eval_examples, cache)[1]
             for lang in args.eval_languages.split(",")}
    base = load_encoder("default")
    every = [train_feats, *evals.values()]
    sides = {}
    for unpad in (False, True):
        encoder = copy.deepcopy(base)
        setup = prepare_encoder(encoder, RuntimeConfig(**{**json.loads(args.runtime), "threads": args.threads,
                                                                 "unpad": unpad, "progress": False}), every,
                                tok.pad_token_id)
        assert bool(setup.unpadded) == unpad, setup
        optimizer = torch.optim.AdamW([p for p in encoder.parameters() if p.requires_grad], lr=1e-5, fused=True)
        sides[unpad] = (encoder, optimizer)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16)

    def forward(encoder: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not args.first_token:
            return encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        with first_token_only(encoder):
            return encoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, :1]

    def train_step(side: tuple, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        encoder, optimizer = side
        ids, mask = batch
        with draws.drawing(), autocast:
            hidden = forward(encoder.train(), ids, mask)
        (hidden.float() * mask[:, :hidden.shape[1], None]).pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def predict(side: tuple, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        with torch.no_grad(), autocast:
            forward(side[0].eval(), *batch)

    lengths = [len(f["input_ids"]) for f in train_feats]
    order = train_batches(lengths, args.batch_size, np.random.default_rng(0))
    batches = [tensors(train_feats, b, tok.pad_token_id) for b in order]
    rows = [("training, English", batches, train_step)]
    if args.one_pass:
        evals = {"+".join(evals): [f for feats in evals.values() for f in feats]}
    for lang, feats in evals.items():
        # predict's batching: longest first, at most batch_size rows and batch_size × 128 tokens
        order = eval_batches([len(f["input_ids"]) for f in feats], args.batch_size, max_tokens=args.batch_size * 128)
        rows.append((f"evaluation, {lang}", [tensors(feats, b, tok.pad_token_id) for b in order], predict))
    precision = "bf16" if args.bf16 else "fp32"
    extras = "".join(f", {flag}" for flag, on in (("one pass", args.one_pass), ("first token", args.first_token),
                                                  (f"runtime {args.runtime}", args.runtime != "{}")) if on)
    print(f"\n{args.task}, {precision}{extras}, {args.threads} thread(s), "
          f"load average before {os.getloadavg()[0]:.2f}\n")
    print("| pass | batches | real tokens / positions | padded s | unpadded s | padded / unpadded |")
    print("|---|---|---|---|---|---|")
    for name, data, run in rows:
        alternate(sides, data, run)  # warm: every shape once on both sides
        seconds = alternate(sides, data, run)
        real = sum(int(mask.sum()) for _, mask in data)
        positions = sum(mask.numel() for _, mask in data)
        print(f"| {name} | {len(data)} | {real / positions:.3f} | {seconds[False]:.2f} | {seconds[True]:.2f} | "
              f"**{seconds[False] / seconds[True]:.3f}×** |")
    print(f"\nload average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
