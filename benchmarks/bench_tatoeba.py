"""Tatoeba accuracy of the raw default model (no fine-tuning), and a retrieval check with known gold.

Usage: ``python benchmarks/bench_tatoeba.py [--data-dir ../shared/data] [--threads 2] [--limit N]
[--languages xtreme|all|de,fr,...] [--xnli-check]``

1. **Tatoeba** (default: XTREME's 36 languages; ``--languages all`` adds XTREME-R's 5): xx→en and
   en→xx nearest-neighbour accuracy by cosine of mean-pooled embeddings, at the pipeline's
   default layer (``hidden_states[8]`` of 12, XTREME's and Phang et al.'s middle layer) and at the
   last layer (the one multilingual-e5 was trained to pool). The gold is read by the ``tatoeba``
   task: since 2026-11-29 the shared data holds LASER's original line-aligned
   ``tatoeba.{xxx}-eng.*`` files, which it uses by default. A language whose gold alignment is
   unknown (only XTREME's sorted files) is reported as such, not scored.
2. **Known-gold check** (``--xnli-check``) on XNLI dev premises (830 distinct English premises
   translated into 14 languages, row i of dev-xx translating row i of dev-en): the same embedding
   and scoring code on other parallel data.

Inputs are not prefixed: e5's "query: " prefix changed little in a pilot (see RESULTS.md), and
phase-2 checkpoints are fine-tuned without it. The load average is printed before and after:
timings on the shared 2-core box mean little without it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from retrieval_setup import SentenceCache, add_model_args, loadavg  # benchmarks run as scripts

from xstilts.errors import DataError
from xstilts.tasks import get_task
from xstilts.tasks._retrieval import nearest_accuracy_stats

HIGH_RESOURCE = ("de", "fr", "es")  # the languages a sound retriever should get well above 70 % on


def accuracy(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(xx→en, en→xx) accuracy in %, gold = same row."""
    return (100 * float(nearest_accuracy_stats(x, y, "numpy")[:, 0].mean()),
            100 * float(nearest_accuracy_stats(y, x, "numpy")[:, 0].mean()))


def xnli_premises(data_dir: Path, lang: str) -> list[str]:
    rows = (data_dir / "xtreme" / "xnli" / f"dev-{lang}.tsv").read_text(encoding="utf-8").splitlines()
    return [r.split("\t")[0] for r in rows]


def pick_languages(task, spec: str) -> tuple[str, ...]:
    if spec == "xtreme":
        return task.languages
    if spec == "all":
        return task.languages_r
    return tuple(lang.strip() for lang in spec.split(",") if lang.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_args(ap)
    ap.add_argument("--limit", type=int, default=None, help="pairs per language (default: all)")
    ap.add_argument("--languages", default="xtreme", help="xtreme (36), all (41) or a comma list")
    ap.add_argument("--xnli-check", action="store_true", help="also run the XNLI-premise known-gold check")
    args = ap.parse_args()
    cache = SentenceCache(args)  # English sides overlap across languages (~11 %): encoded once
    embed = cache.arrays

    task = get_task("tatoeba", data_dir=args.data_dir)
    print("\n## Tatoeba (xx→en / en→xx accuracy, %)")
    print("| language | layer 8 (xtreme) | layer 12 (last) | pairs |")
    print("|---|---|---|---|")
    missing_gold: list[str] = []
    reason = ""
    scores: dict[str, np.ndarray] = {}  # lang -> [[l8 xx→en, l8 en→xx], [l12 xx→en, l12 en→xx]]
    started, n_sent = time.perf_counter(), 0
    for lang in pick_languages(task, args.languages):
        try:
            pairs = task.load("eval", lang, args.limit)
        except DataError as exc:
            missing_gold.append(lang)
            reason = exc.one_line()
            continue
        xs, ys = embed([p.source for p in pairs]), embed([p.target for p in pairs])
        n_sent += 2 * len(pairs)
        scores[lang] = np.array([accuracy(x, y) for x, y in zip(xs, ys, strict=True)])
        cells = [f"{a:.1f} / {b:.1f}" for a, b in scores[lang]]
        print(f"| {lang} | {cells[0]} | {cells[1]} | {len(pairs)} |", flush=True)
    if scores:
        mean = np.mean(list(scores.values()), axis=0)
        print(f"| **mean ({len(scores)})** | {mean[0, 0]:.1f} / {mean[0, 1]:.1f} | "
              f"{mean[1, 0]:.1f} / {mean[1, 1]:.1f} | |")
        elapsed = time.perf_counter() - started
        print(f"\nencoded {len(cache)} distinct Tatoeba sentences (of {n_sent}) in {elapsed:.0f} s "
              f"({len(cache) / elapsed:.1f} sentences/s)")
        for lang in HIGH_RESOURCE:
            if lang in scores:
                a, b = scores[lang][0]
                verdict = "above" if min(a, b) > 70 else "NOT above"
                print(f"{lang} at layer 8: {a:.1f} / {b:.1f} -> {verdict} 70 % in both directions")
    if missing_gold:
        print(f"\nno gold alignment for {len(missing_gold)} language(s) ({' '.join(missing_gold)}): {reason}")
    print(f"{len(cache)} distinct sentences encoded; load after Tatoeba: {loadavg()}", flush=True)

    if not args.xnli_check:
        return
    print("\n## Known-gold check: XNLI dev premises (xx→en / en→xx accuracy, %)")
    en_rows = xnli_premises(args.data_dir, "en")
    keep = sorted({p: i for i, p in reversed(list(enumerate(en_rows)))}.values())  # first row of each premise
    keep = keep[: args.limit] if args.limit else keep
    started = time.perf_counter()
    en = embed([en_rows[i] for i in keep])
    n_sent = len(keep)
    print("| language | layer 8 (xtreme) | layer 12 (last) | premises |")
    print("|---|---|---|---|")
    sums = np.zeros((2, 2))
    langs = [lang for lang in get_task("xnli").languages if lang != "en"]
    for lang in langs:
        rows = xnli_premises(args.data_dir, lang)
        xs = embed([rows[i] for i in keep])
        n_sent += len(keep)
        accs = [accuracy(x, y) for x, y in zip(xs, en, strict=True)]
        sums += np.array(accs)
        cells = [f"{a:.1f} / {b:.1f}" for a, b in accs]
        print(f"| {lang} | {cells[0]} | {cells[1]} | {len(keep)} |", flush=True)
    mean = sums / len(langs)
    print(f"| **mean** | {mean[0, 0]:.1f} / {mean[0, 1]:.1f} | {mean[1, 0]:.1f} / {mean[1, 1]:.1f} | |")
    elapsed = time.perf_counter() - started
    print(f"\nembedded {n_sent} XNLI sentences in {elapsed:.0f} s ({n_sent / elapsed:.1f} sentences/s)")
    print(f"load after: {loadavg()}")


if __name__ == "__main__":
    main()
