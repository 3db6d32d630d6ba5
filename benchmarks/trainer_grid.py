"""The quickstart grid as a competent user would write it with the Hugging Face ``Trainer``.

Usage::

    python benchmarks/trainer_grid.py --config configs/quickstart.toml --json hf.json
    python benchmarks/trainer_grid.py --config configs/quickstart.toml --set 'seeds=[1]' \\
        --set 'target.languages=["en","de"]' --json hf.json

This is side (b) of ``bench_study.py``: the same work as ``xstilts run CONFIG`` (same grid, same
examples, same hyperparameters, same checkpoint selection, same metric code), written the way one
would write it with ``transformers`` alone. It reads the experiment TOML with xstilts' own config
loader only so that both sides are guaranteed the same numbers (``--set`` works as in ``xstilts run``).

For each intermediate setting and seed (in xstilts' plan order):

1. **Phase 2** (settings other than ``none``; one English task, e.g. SICK): fine-tune
   ``AutoModelForSequenceClassification`` on the first ``intermediate.train.max_train_examples``
   training examples; evaluate English dev (first ``max_eval_examples``) every ``eval_every`` steps
   and at the last step; keep the best step's weights (whole English dev, as xstilts' phase 2 does);
   save the encoder (``model.base_model``) once. Both targets of that seed start from it.
2. **Phase 3**, per target task: fine-tune ``AutoModelFor{Token,Sequence}Classification`` with a
   fresh head from the pretrained model (setting ``none``) or the saved phase-2 encoder, on the
   first ``max_train_examples`` English training examples (XNLI: all of them, per the config's
   override). At every evaluation step a callback runs ``Trainer.predict`` on every language's
   eval set (first ``max_eval_examples``); the step with the best English score on the *selection
   half* of English dev (``xstilts.evaluation.halves``) is kept; training stops after ``patience``
   evaluations without improvement. Reported: each language's score at the kept step, English on
   the other (report) half, as xstilts stores it.

What a competent user does here: examples tokenised once per file with the fast tokenizer and kept
in memory, no padding (the task's data collator pads per batch), ``group_by_length``,
``optim="adamw_torch_fused"``, fp32 (or the Trainer's own ``bf16=True`` when the config sets
``runtime.bf16``, as xstilts then autocasts), linear schedule with warm-up as a share of all steps, weight
decay 0.01 without biases/LayerNorm (the Trainer's default grouping), clipping at 1.0, the best
weights kept in memory rather than checkpointed to disk, evaluation batch 32 on CPU (xstilts'
default; 128 on a GPU, like xstilts). Shared helpers come from ``bench_train.py``.

Known differences from xstilts that are not speed switches: the classification head, by default
the Auto class's (for BERT, the pooler + linear; the default model's pooler is a fixed random
matrix, as mE5 has none) vs xstilts' (dropout, dense + tanh on the first token, dropout, linear,
initialised per seed) -- it moved SICK dev accuracy by ~15 points; ``--head xstilts`` gives the
Trainer xstilts' head, so that only the training code differs; a sentence longer than
``max_length`` is truncated (its cut-off words count as no entity), where xstilts tags it in
overlapping windows -- in the quickstart only PAN-X zh has such sentences (13 of its 200 dev
sentences at 128 sub-tokens; 3 of its 242 gold entities start in cut-off words, about 0.6 F1 on
zh); the batch order (``group_by_length`` vs xstilts' length buckets).

``--processes N`` splits the seeds over N copies of this script run at once, each on its share of
the cores (one thread each on 2 cores), and merges their records: what a user who knows that two
small runs side by side beat one run on both cores does by hand, a seed group per terminal.

Output (``--json``): one record per run with its per-language final scores, selected step, steps
trained and wall time, in the same 0-100 units xstilts stores.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_train import _collator, _hf_encode, _hf_model, _hf_tokenize, _hf_trainer, _predict_in_order
from transformers import TrainerCallback

from xstilts.config import BASELINE, ExperimentConfig, TrainConfig, load_config, setting_tasks
from xstilts.evaluation.halves import keep_rows, report_mask, selection_mask
from xstilts.heads import get_head_kind
from xstilts.metrics.stats import score_from_stats
from xstilts.models.loading import load_tokenizer, resolve_model_path
from xstilts.tasks import Task, get_task
from xstilts.tasks.base import EVAL_SPLIT

# ------------------------------------------------------------------------------------------- data

@dataclass
class EvalSet:
    """One language's eval examples, tokenised for the Trainer, and what scoring them needs."""

    language: str
    examples: list
    rows: list[dict[str, Any]]
    scoring: list[dict[str, Any]]  # per example, for HeadKind.evaluate (see bench_train._hf_tokenize)


class Data:
    """Each file read and tokenised once per process and kept in memory (the targets of every
    setting and seed share them), as one would with a dict or ``datasets``' cache."""

    def __init__(self, tokenizer: Any, data_dir: Path):
        self.tokenizer, self.data_dir = tokenizer, data_dir
        self._cache: dict[tuple, Any] = {}

    def task(self, name: str) -> Task:
        return get_task(name, data_dir=self.data_dir)

    def train_rows(self, task: Task, limit: int | None, max_length: int) -> list[dict[str, Any]]:
        key = ("train", task.name, limit, max_length)
        if key not in self._cache:
            self._cache[key] = _hf_encode(task, task.load("train", "en", limit), self.tokenizer,
                                          max_length=max_length)
        return self._cache[key]

    def eval_set(self, task: Task, language: str, limit: int | None, max_length: int) -> EvalSet:
        key = (EVAL_SPLIT, task.name, language, limit, max_length)
        if key not in self._cache:
            examples = task.load(EVAL_SPLIT, language, limit)
            rows, scoring = _hf_tokenize(task, examples, self.tokenizer, max_length=max_length)
            self._cache[key] = EvalSet(language, examples, rows, scoring)
        return self._cache[key]


# --------------------------------------------------------------------- evaluation during training

class EvaluateEveryLanguage(TrainerCallback):
    """At xstilts' evaluation steps (every ``every`` steps and the last), call ``evaluate(step)`` --
    which predicts every language and returns the selection score --, keep the best weights in
    memory and stop training after ``patience`` evaluations without a strictly better score."""

    def __init__(self, every: int, patience: int | None, evaluate: Callable[[int], float]):
        self.every, self.patience, self.evaluate = every, patience, evaluate
        self.best_score, self.best_step, self.since_best = -math.inf, 0, 0
        self.best_state: dict[str, Any] | None = None
        self.evaluations = self.steps = 0
        self.eval_s = 0.0  # seconds spent in ``evaluate`` (prediction and scoring)

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> Any:
        step = self.steps = state.global_step
        if step % self.every and step != state.max_steps:
            return control
        score = self.evaluate(step)
        self.evaluations += 1
        if score > self.best_score:
            self.best_score, self.best_step, self.since_best = score, step, 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.since_best += 1
        if self.patience is not None and self.since_best >= self.patience:
            control.should_training_stop = True
        return control


def train_and_select(task: Task, model: Any, train_rows: list, eval_sets: list[EvalSet], hp: TrainConfig,
                     seed: int, hold_out: bool, args: argparse.Namespace, tokenizer: Any,
                     ) -> tuple[EvaluateEveryLanguage, dict[int, dict[str, Any]]]:
    """Train with per-step evaluation of every set; leave ``model`` holding the selected weights.

    Returns the callback (selected step, evaluations) and, per evaluated step, each language's
    per-example metric rows (``HeadKind.evaluate``'s ``(hits, n_pred, n_gold)``)."""
    kind = get_head_kind(task.head)
    rows_by_step: dict[int, dict[str, Any]] = {}

    def evaluate(step: int) -> float:
        started = time.monotonic()
        rows_by_step[step] = {}
        for s in eval_sets:
            logits = _predict_in_order(trainer, s.rows)
            ev = kind.evaluate(task, s.examples, s.scoring, list(logits))
            rows_by_step[step][s.language] = ev.stats[task.metric]
        english = rows_by_step[step]["en"]
        if hold_out:  # choose on the selection half; the other half is what is reported
            english = keep_rows(english, selection_mask(len(english)))
        callback.eval_s += time.monotonic() - started
        return score_from_stats(task.metric, english)

    total = max(1, int(round(hp.epochs * math.ceil(len(train_rows) / hp.batch_size))))
    every = hp.eval_every or math.ceil(len(train_rows) / hp.batch_size)  # None: once per epoch
    callback = EvaluateEveryLanguage(every, hp.patience, evaluate)
    with tempfile.TemporaryDirectory(prefix="trainer-grid-") as out_dir:
        trainer = _hf_trainer(model, len(train_rows), out_dir, _collator(task, tokenizer, padded=False),
                              padded=False, train_dataset=train_rows, hp=hp.model_dump(), seed=seed,
                              eval_batch_size=args.eval_batch_size, use_cpu=args.use_cpu, callbacks=[callback],
                              bf16=args.bf16)
        trainer.train()
    if trainer.state.max_steps != total:  # the same schedule as xstilts' loop, or the comparison is off
        raise RuntimeError(f"Trainer planned {trainer.state.max_steps} steps, xstilts plans {total}")
    assert callback.best_state is not None
    model.load_state_dict(callback.best_state)
    return callback, rows_by_step


# ------------------------------------------------------------------------------------------ phases

def intermediate(cfg: ExperimentConfig, name: str, seed: int, data: Data, model_dir: str, save_to: Path,
                 args: argparse.Namespace) -> dict[str, Any]:
    """Phase 2 on one English task: select on its whole English dev set, save the encoder."""
    started, started_at = time.monotonic(), time.time()  # the epoch stamps let a time-sliced run count active time
    hp = cfg.intermediate.train
    task = data.task(name)
    model = _hf_model(task, model_dir, seed, hp.dropout, args.head)
    train_rows = data.train_rows(task, hp.max_train_examples, hp.max_length)
    dev = data.eval_set(task, "en", hp.max_eval_examples, hp.max_length)
    callback, rows = train_and_select(task, model, train_rows, [dev], hp, seed, False, args, data.tokenizer)
    model.base_model.save_pretrained(save_to)  # the encoder alone: each target gets a fresh head
    return {"phase": "intermediate", "setting": name, "seed": seed, "metric": task.metric,
            "selected_step": callback.best_step, "steps": callback.steps, "evaluations": callback.evaluations,
            "eval_s": callback.eval_s, "dev_score": score_from_stats(task.metric, rows[callback.best_step]["en"]),
            "wall_s": time.monotonic() - started, "started_at": started_at, "finished_at": time.time()}


def target(cfg: ExperimentConfig, setting: str, name: str, seed: int, data: Data, start_from: str,
           args: argparse.Namespace) -> dict[str, Any]:
    """Phase 3: English training, every language evaluated at every evaluation step, zero-shot scores."""
    started, started_at = time.monotonic(), time.time()
    hp = cfg.target.train_for(name)
    task = data.task(name)
    languages = cfg.target.languages_for(name, task.languages)  # English first
    model = _hf_model(task, start_from, seed, hp.dropout, args.head)
    train_rows = data.train_rows(task, hp.max_train_examples, hp.max_length)
    eval_sets = [data.eval_set(task, lang, hp.max_eval_examples, hp.max_length) for lang in languages]
    callback, rows = train_and_select(task, model, train_rows, eval_sets, hp, seed, True, args, data.tokenizer)
    chosen = rows[callback.best_step]
    scores = {}
    for lang, stats in chosen.items():  # English on the report half, as xstilts stores it
        scores[lang] = score_from_stats(task.metric, keep_rows(stats, report_mask(len(stats))) if lang == "en"
                                        else stats)
    return {"phase": "target", "setting": setting, "target": name, "seed": seed, "metric": task.metric,
            "selected_step": callback.best_step, "steps": callback.steps, "evaluations": callback.evaluations,
            "train_examples": len(train_rows), "scores": scores, "eval_s": callback.eval_s,
            "wall_s": time.monotonic() - started, "started_at": started_at, "finished_at": time.time()}


def check_supported(cfg: ExperimentConfig) -> None:
    """This script does the quickstart's kind of grid; anything else would silently differ."""
    icfg, problems = cfg.intermediate, []
    for setting in icfg.settings:
        if setting != BASELINE and len(setting_tasks(setting)) != 1:
            problems.append(f"multi-task setting {setting!r}")
    if icfg.task_options or icfg.task_caps or icfg.mlm_rate or cfg.target.task_options:
        problems.append("task options, task caps or MLM")
    if cfg.target.selection.average:
        problems.append("checkpoint averaging")
    if cfg.runtime.precision not in ("no", "bf16") or cfg.runtime.freeze_embeddings:
        problems.append("fp16 or frozen embeddings")
    for hp in (icfg.train, cfg.target.train, *cfg.target.overrides.values()):
        if hp.max_steps is not None or hp.grad_accum_steps != 1:
            problems.append("max_steps or grad_accum_steps")
    if problems:
        raise SystemExit(f"trainer_grid.py does not do: {'; '.join(dict.fromkeys(problems))}")


def split_over_processes(args: argparse.Namespace) -> None:
    """Run the seeds in ``args.processes`` groups, each a copy of this script started at once; merge."""
    seeds = load_config(args.config, args.sets).seeds
    groups = [seeds[i::args.processes] for i in range(args.processes) if seeds[i::args.processes]]
    threads = args.threads or max(1, (os.cpu_count() or 1) // len(groups))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="trainer-grid-split-") as tmp:
        procs = []
        for i, group in enumerate(groups):  # same process group as this one: --slice stops them with it
            cmd = [sys.executable, __file__, "--config", str(args.config), *[a for s in args.sets for a in ("--set", s)],
                   "--set", f"seeds={json.dumps(group)}", "--threads", str(threads), "--head", args.head,
                   "--json", str(Path(tmp) / f"{i}.json")]
            if args.data_dir:
                cmd += ["--data-dir", str(args.data_dir)]
            procs.append(subprocess.Popen(cmd))
        if any(proc.wait() != 0 for proc in procs):
            raise SystemExit("a seed group of trainer_grid.py failed (its output is above)")
        parts = [json.loads((Path(tmp) / f"{i}.json").read_text(encoding="utf-8")) for i in range(len(groups))]
    out = {**parts[0], "sets": args.sets, "processes": len(groups), "seed_groups": groups,
           "wall_s": time.monotonic() - started, "runs": [r for part in parts for r in part["runs"]]}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(f"{len(out['runs'])} runs in {out['wall_s']:.0f} s ({len(groups)} processes)", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="as in `xstilts run --set`")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="default: $XSTILTS_DATA, else the config's data_dir (as xstilts resolves it)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: the config's runtime.threads, else PyTorch's own)")
    ap.add_argument("--head", choices=("auto", "xstilts"), default="auto",
                    help="classification head: the Auto class's own (BERT: pooler + linear), or xstilts' "
                         "(dropout, dense + tanh on the first token, dropout, linear; fresh per seed)")
    ap.add_argument("--processes", type=int, default=1,
                    help="split the seeds over N copies of this script run at once, cores / N threads each")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.processes > 1:
        split_over_processes(args)
        return

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # "newly initialized weights" for every fresh head
    cfg = load_config(args.config, args.sets)
    check_supported(cfg)
    threads = args.threads or cfg.runtime.threads
    if threads:
        torch.set_num_threads(threads)
    args.use_cpu = not torch.cuda.is_available()
    args.eval_batch_size = cfg.runtime.eval_batch_size or (32 if args.use_cpu else 128)
    args.bf16 = cfg.runtime.bf16  # the Trainer's own bf16=True: autocast in training and in predict
    data_dir = args.data_dir or Path(os.environ.get("XSTILTS_DATA", cfg.data_dir))
    model_dir = resolve_model_path(cfg.model)
    data = Data(load_tokenizer(model_dir), data_dir)

    started = time.monotonic()
    records: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="trainer-grid-encoders-"))
    try:
        for setting in cfg.intermediate.setting_names():
            for seed in cfg.seeds:
                start_from = model_dir
                if setting != BASELINE:
                    start_from = str(work / f"{setting}-s{seed}")
                    records.append(intermediate(cfg, setting, seed, data, model_dir, Path(start_from), args))
                    print(json.dumps(records[-1]), flush=True)
                for name in cfg.target.tasks:
                    records.append(target(cfg, setting, name, seed, data, start_from, args))
                    print(json.dumps(records[-1]), flush=True)
                if setting != BASELINE:
                    shutil.rmtree(start_from)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = {"config": str(args.config), "sets": args.sets, "threads": torch.get_num_threads(),
           "eval_batch_size": args.eval_batch_size, "head": args.head, "bf16": args.bf16,
           "wall_s": time.monotonic() - started, "runs": records}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(f"{len(records)} runs in {out['wall_s']:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
