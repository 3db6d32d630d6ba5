"""Evaluation passes with attention by the compiled kernel against SDPA (``runtime.attention_kernel``).

Usage: ``python benchmarks/bench_eval_attention.py [--task xnli] [--bf16] [--rounds 5] [--threads 1]
[--languages en,de,es,ru,zh,ar,hi,sw] [--examples 300] [--json F]``

One process, one copy of the default model prepared as a run prepares it (``prepare_encoder`` with
the study's switches: ``first_token_only``, ``fast_dropout``, ``pack_sequences``; unpadding at its
default threshold), and the task's dev sets pooled into one prediction pass as evaluation runs them
(``evaluation/predict.py``, one worker). The pass runs with the kernel off and on in turn, the order
alternating round by round, so a machine's drift between minutes falls on both sides; an untimed
pass of each first. With it off, evaluation is what it was before the kernel: batches with at least
``unpad_min_padding`` of padding unpadded with SDPA attention in the padded layout, the rest padded.
Printed: seconds per pass on each side, the ratio of the medians, and how far the outputs (logits)
of the two sides are apart, with the share of examples whose predicted class or tag differs.

``--profile``: then one more pass a side under ``torch.profiler``, its operators' self CPU time summed
by family (``profile_step.py``'s families) side by side -- how much of a pass attention is, and so
the most a faster attention can take off it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _fresh import fresh

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=REPO / ".." / "shared" / "data")
    ap.add_argument("--task", default="xnli")
    ap.add_argument("--languages", default="en,de,es,ru,zh,ar,hi,sw")
    ap.add_argument("--examples", type=int, default=None, help="per language (default: the quickstart's, 300 / 200)")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--profile", action="store_true", help="then one profiled pass a side, by operator family")
    args = ap.parse_args()

    from xstilts.config import RuntimeConfig
    from xstilts.evaluation.predict import predict
    from xstilts.models import unpadding
    from xstilts.training.speed import prepare_encoder

    runtime = RuntimeConfig(progress=False, threads=args.threads, bf16=args.bf16, fast_dropout=True,
                            first_token_only=True, pack_sequences=True, attention_kernel=True)
    per_language = args.examples or (300 if args.task == "xnli" else 200)
    tok, _, kind, features, encoder, head = fresh(args.task, per_language, args.data_dir, split="dev",
                                                  languages=tuple(args.languages.split(",")))
    setup = prepare_encoder(encoder, runtime, [features], tok.pad_token_id)
    if not setup.attention_kernel:
        raise SystemExit("the attention kernel is not available here (no compiler, or its check failed)")

    def one_pass(kernel: bool) -> tuple[float, list[np.ndarray]]:
        unpadding.install(encoder, runtime.unpad_min_padding, kernel=kernel)
        start = time.perf_counter()
        out = predict(encoder, head, kind, features, tok.pad_token_id, bf16=args.bf16, workers=1)
        return time.perf_counter() - start, out

    one_pass(True), one_pass(False)  # untimed: caches, autocast's weight copies
    seconds: dict[bool, list[float]] = {True: [], False: []}
    outputs: dict[bool, list[np.ndarray]] = {}
    for r in range(args.rounds):
        for kernel in ((False, True) if r % 2 == 0 else (True, False)):
            took, outputs[kernel] = one_pass(kernel)
            seconds[kernel].append(took)
    off = np.concatenate([np.asarray(o, dtype=np.float32).reshape(-1) for o in outputs[False]])
    on = np.concatenate([np.asarray(o, dtype=np.float32).reshape(-1) for o in outputs[True]])
    flips = np.mean([bool((np.asarray(a).argmax(-1) != np.asarray(b).argmax(-1)).any())
                     for a, b in zip(outputs[False], outputs[True], strict=True)])
    tokens = sum(f["length"] for f in features)
    result = {
        "task": args.task, "bf16": args.bf16, "threads": args.threads, "examples": len(features), "tokens": tokens,
        "sdpa_s": seconds[False], "kernel_s": seconds[True],
        "ratio": float(np.median(seconds[False]) / np.median(seconds[True])),
        "max_abs_diff": float(np.abs(off - on).max()), "max_abs_output": float(np.abs(off).max()),
        "examples_with_another_prediction": float(flips), "load_average": os.getloadavg(),
        "torch": torch.__version__,
    }
    print(f"{args.task}, {'bf16' if args.bf16 else 'fp32'}, {len(features)} examples ({tokens} tokens), "
          f"{args.threads} thread(s), {args.rounds} rounds alternating; load average {os.getloadavg()}")
    print("| side | seconds per pass (median) | passes |\n|---|---|---|")
    for label, kernel in (("SDPA (kernel off)", False), ("attention kernel", True)):
        print(f"| {label} | {np.median(seconds[kernel]):.2f} | {', '.join(f'{s:.2f}' for s in seconds[kernel])} |")
    print(f"\nSDPA / kernel: **{result['ratio']:.3f}×**; outputs differ by at most {result['max_abs_diff']:.2e} "
          f"(largest |output| {result['max_abs_output']:.2f}); examples with another predicted class or tag: "
          f"{100 * flips:.2f} %")
    if args.profile:
        result["profile_s"] = {side: profiled(lambda k=kernel: one_pass(k))
                               for side, kernel in (("sdpa", False), ("kernel", True))}
        print_profile(result["profile_s"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


def profiled(run: Callable[[], object]) -> dict[str, float]:
    """Seconds of operator self time by family in one call of ``run`` (aten, oneDNN and xstilts ops)."""
    from profile_step import COUNTED, family
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    by_family: dict[str, float] = defaultdict(float)
    for ev in prof.events():
        if ev.self_cpu_time_total > 0 and ev.name.startswith(COUNTED):
            by_family[family(ev.name)] += ev.self_cpu_time_total / 1e6
    return dict(by_family)


def print_profile(sides: dict[str, dict[str, float]]) -> None:
    totals = {side: sum(f.values()) for side, f in sides.items()}
    print("\n| operator family | SDPA side: s (share) | kernel side: s (share) |\n|---|---|---|")
    for fam in sorted({f for fams in sides.values() for f in fams}, key=lambda f: -sides["sdpa"].get(f, 0.0)):
        cells = [f"{sides[s].get(fam, 0.0):.2f} ({100 * sides[s].get(fam, 0.0) / totals[s]:.1f} %)" for s in sides]
        print(f"| {fam} | {' | '.join(cells)} |")
    print(f"| all operators | {totals['sdpa']:.2f} | {totals['kernel']:.2f} |")


if __name__ == "__main__":
    main()
