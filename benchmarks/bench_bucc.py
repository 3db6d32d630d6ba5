"""BUCC 2018 zh-en F1 of the raw default model (no fine-tuning), with the cross-fitted threshold.

Usage: ``python benchmarks/bench_bucc.py [--data-dir ../shared/data] [--threads 1] [--limit N]
[--language zh]``

The ``bucc`` task's own scoring (:mod:`xstilts.tasks.bucc`): margin mining once over the full dev
corpora (8,624 zh / 13,589 en sentences offline), then, as there is no test gold, the threshold
is chosen on one source-id hash half and scored on the other, both ways, F1 pooled. Beside it the
F1 at the threshold tuned on the scored pairs themselves (``f1_tuned_on_scored``, the figure this
task reported before: optimistic). Mean pooling, no prefix, sentences cut at 128 tokens, at the
pipeline's default layer (``hidden_states[8]``) and at the last layer, both from one forward
pass. The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from xstilts.evaluation.embed import embed_sentences_layers
from xstilts.metrics.stats import score_from_stats
from xstilts.tasks import get_task

LAYERS = ("xtreme", "last")


def fmt(threshold: float | None) -> str:
    return "none" if threshold is None else f"{threshold:.3f}"  # None: no gold pair to tune on


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text(encoding="utf-8").strip()
    except OSError:
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    repo = Path(__file__).resolve().parents[1]
    ap.add_argument("--data-dir", type=Path, default=repo / ".." / "shared" / "data")
    ap.add_argument("--model", default="default")
    ap.add_argument("--language", default="zh")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: fastest on a busy 2-core box)")
    ap.add_argument("--limit", type=int, default=None, help="first N sentences of each side (default: all)")
    ap.add_argument("--max-length", type=int, default=128)
    args = ap.parse_args()

    import torch

    from xstilts.models.loading import load_encoder, load_tokenizer

    torch.set_num_threads(args.threads)
    encoder, tokenizer = load_encoder(args.model), load_tokenizer(args.model)
    print(f"model {args.model}: {encoder.config.num_hidden_layers} layers; torch threads {args.threads}; "
          f"{platform.processor() or platform.machine()}; {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"load before: {loadavg()}", flush=True)

    cache: dict[str, tuple[np.ndarray, ...]] = {}

    def embedder(layer: int):
        def embed(texts, language: str) -> np.ndarray:
            new = [t for t in dict.fromkeys(texts) if t not in cache]
            if new:
                outs = embed_sentences_layers(encoder, tokenizer, new, layers=LAYERS, max_length=args.max_length)
                for i, text in enumerate(new):
                    cache[text] = tuple(out[i] for out in outs)
            return np.stack([cache[t][layer] for t in texts])
        return embed

    task = get_task("bucc", data_dir=args.data_dir)
    started = time.perf_counter()
    print(f"\n## BUCC {args.language}-en (F1 %, margin mining k=4, mean pooling)")
    print("| layer | F1 cross-fitted | F1 tuned on scored | precision | recall | thresholds (A→B / B→A) "
          "| gold A / B | candidates |")
    print("|---|---|---|---|---|---|---|---|")
    for i, name in enumerate(("8 (xtreme)", "12 (last)")):
        res = task.evaluate_embeddings(embedder(i), args.language, args.limit)
        e = res.extra
        f1 = score_from_stats("f1", res.stats["f1"])
        thresholds = (f"{fmt(e['threshold_a'])} / {fmt(e['threshold_b'])}" if "threshold_a" in e
                      else f"{fmt(e['threshold'])} (dev→test)")
        halves = f"{e['half_a']['gold_pairs']} / {e['half_b']['gold_pairs']}" if "half_a" in e else ""
        print(f"| {name} | {f1:.1f} | {e['f1_tuned_on_scored']:.1f} | {e['precision']:.1f} | {e['recall']:.1f} "
              f"| {thresholds} | {halves} | {e['candidates']} |", flush=True)
        if i == 0:
            print(f"  ({e['scored_split']}: {e['source_sentences']} {args.language} / {e['english_sentences']} en "
                  f"sentences, {e['gold_pairs']} gold pairs; half sizes A {e.get('half_a')} B {e.get('half_b')}; "
                  f"{len(cache)} distinct sentences encoded in {time.perf_counter() - started:.0f} s)", flush=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load after: {loadavg()}")


if __name__ == "__main__":
    main()
