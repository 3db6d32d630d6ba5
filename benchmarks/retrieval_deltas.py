"""Tatoeba accuracy after each phase-2 setting minus the raw model's, with paired item intervals.

Usage: ``python benchmarks/retrieval_deltas.py runs/study-retrieval [--seed 1] [--n-boot 2000]``
(the store of ``configs/study-retrieval.toml``).

For one seed ``xstilts analyze`` has no seed variance to give, so this prints what one seed can
say: the change of the mean accuracy over the stored languages (both directions), with a 95 %
percentile interval from resampling each language's sentence pairs (the same resample for both
models: the pairs are the same). It covers item noise only, not the spread over phase-2 seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from xstilts.config import BASELINE
from xstilts.store import Store
from xstilts.tasks.base import EVAL_SPLIT

METRICS = ("accuracy", "accuracy_en_xx")  # xx→en, en→xx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("expdir", type=Path)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--n-boot", type=int, default=2000)
    args = ap.parse_args()
    with Store(args.expdir, readonly=True) as store:
        runs = {r["intermediate"]: r["run_id"] for r in store.runs()
                if r["target"] == "tatoeba" and r["seed"] == args.seed and r["status"] == "done"}
        languages = sorted({s["language"] for s in store.scores("final") if s["run_id"] in runs.values()})
        hits = {(setting, metric, lang): store.example_stats(run_id, "tatoeba", lang, EVAL_SPLIT, metric)[:, 0]
                for setting, run_id in runs.items() for metric in METRICS for lang in languages}
    if BASELINE not in runs:
        raise SystemExit(f"{args.expdir}: no finished tatoeba run of the baseline for seed {args.seed}")
    rng = np.random.default_rng(0)
    draws = {lang: rng.integers(0, len(hits[(BASELINE, METRICS[0], lang)]),
                                size=(args.n_boot, len(hits[(BASELINE, METRICS[0], lang)]))) for lang in languages}
    print(f"seed {args.seed}; languages {' '.join(languages)}; {args.n_boot} paired item resamples")
    print("| setting | Δ xx→en (95 % item interval) | Δ en→xx (95 % item interval) |")
    print("|---|---|---|")
    for setting in runs:
        if setting == BASELINE:
            continue
        cells = []
        for metric in METRICS:
            diff = [100 * (hits[(setting, metric, lang)] - hits[(BASELINE, metric, lang)]) for lang in languages]
            point = float(np.mean([d.mean() for d in diff]))
            boots = np.mean([d[draws[lang]].mean(axis=1) for d, lang in zip(diff, languages, strict=True)], axis=0)
            lo, hi = np.percentile(boots, [2.5, 97.5])
            cells.append(f"{point:+.1f} ({lo:+.1f} to {hi:+.1f})")
        print(f"| {setting} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
