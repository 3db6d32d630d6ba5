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
import time

from retrieval_setup import SentenceCache, add_model_args, loadavg  # benchmarks run as scripts

from xstilts.metrics.stats import score_from_stats
from xstilts.tasks import get_task


def fmt(threshold: float) -> str:
    return f"{threshold:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_args(ap)
    ap.add_argument("--language", default="zh")
    ap.add_argument("--limit", type=int, default=None, help="first N sentences of each side (default: all)")
    args = ap.parse_args()
    cache = SentenceCache(args)

    task = get_task("bucc", data_dir=args.data_dir)
    started = time.perf_counter()
    print(f"\n## BUCC {args.language}-en (F1 %, margin mining k=4, mean pooling)")
    print("| layer | F1 cross-fitted | F1 tuned on scored | precision | recall | thresholds (A→B / B→A) "
          "| gold A / B | candidates |")
    print("|---|---|---|---|---|---|---|---|")
    for i, name in enumerate(("8 (xtreme)", "12 (last)")):
        res = task.evaluate_embeddings(cache.embedder(i), args.language, args.limit)
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
