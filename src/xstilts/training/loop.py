"""The training loop: plain PyTorch, one encoder, one or more (task, head) jobs.

Why not the HF Trainer: we need per-step evaluation of many languages, multi-task sampling,
length-bucketed batches and exact control over what is kept; a readable loop does all that.

Each step picks a job (by the sampler's probabilities when there are several), takes that job's
next batch, and updates encoder + head. Every ``eval_every`` steps (and at the end) ``evaluate``
is called; it returns the model-selection score, and the weights of the best evaluation are kept
and restored at the end. A non-finite loss stops the run with a TrainingError.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from accelerate import Accelerator
from torch import nn
from transformers import get_linear_schedule_with_warmup

from xstilts.config import RuntimeConfig, TrainConfig
from xstilts.errors import TrainingError
from xstilts.faults import fault_point, poison
from xstilts.heads.base import Feature, HeadKind
from xstilts.models import draws
from xstilts.models.draws import KernelDraws
from xstilts.training.batching import train_batches
from xstilts.training.speed import adamw_options, recheck_threads, thread_cap_changed, uses_draw_kernel
from xstilts.training.tracking import RunTracker


@dataclass
class Job:
    """One task trained in this loop: its head and its tokenised training features."""

    name: str
    kind: HeadKind
    head: nn.Module
    features: Sequence[Feature]


@dataclass
class Outcome:
    steps: int = 0
    train_tokens: int = 0  # real (non-padding) tokens
    train_positions: int = 0  # positions the model computed, padding included
    train_seconds: float = 0.0
    best_step: int = 0
    best_score: float = -math.inf
    evaluations: int = 0
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)  # the learning rate each optimizer step used
    thread_log: list[list[float | int | None]] = field(default_factory=list)  # auto-thread re-checks

    @property
    def tokens_per_second(self) -> float:
        return self.train_tokens / self.train_seconds if self.train_seconds > 0 else 0.0


def make_accelerator(runtime: RuntimeConfig, grad_accum_steps: int = 1,
                     tracker: RunTracker | None = None) -> Accelerator:
    """One code path for CPU, one GPU or many (DDP under ``accelerate launch``), bf16/fp16 if asked.

    ``split_batches``: a config's ``batch_size`` is the global batch, cut across processes, so a
    run means the same thing (and the LR schedule has the same length) on 1 GPU or 8.
    ``find_unused_parameters``: the pooler (and, multi-task, the heads not drawn) get no gradient.
    ``tracker``: the run's live tracking (its ``log_with`` and ``project_dir``; training/tracking.py).
    """
    from accelerate.state import AcceleratorState
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs

    precision = runtime.precision
    state = AcceleratorState._shared_state
    if state and str(state.get("_mixed_precision", precision)) != precision:
        AcceleratorState._reset_state()  # a new precision within one process (tests, notebooks)
    return Accelerator(mixed_precision=precision, gradient_accumulation_steps=grad_accum_steps,
                       dataloader_config=DataLoaderConfiguration(split_batches=True),
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
                       **(tracker.accelerator_kwargs() if tracker is not None else {}))


def set_seed(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def sampling_probs(sizes: Sequence[int], sampler: str = "proportional", temperature: float = 1.0) -> np.ndarray:
    """Task sampling probabilities: proportional to size, p ∝ n^(1/T), or uniform."""
    n = np.asarray(sizes, dtype=np.float64)
    if sampler == "uniform":
        w = np.ones_like(n)
    elif sampler == "proportional":
        w = n
    elif sampler == "temperature":
        w = n ** (1.0 / temperature)
    else:
        raise ValueError(f"unknown sampler {sampler!r}")
    return w / w.sum()


def _batch_stream(job: Job, hp: TrainConfig, bucket: bool, rng: np.random.Generator) -> Iterator[list[int]]:
    lengths = [f["length"] for f in job.features]
    while True:
        yield from train_batches(lengths, hp.batch_size, rng, bucket)


def param_groups(modules: Sequence[nn.Module], weight_decay: float) -> list[dict]:
    """No weight decay on biases and LayerNorm weights (standard for BERT-style fine-tuning)."""
    decay, no_decay, seen = [], [], set()
    for module in modules:
        for name, p in module.named_parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def clip_gradients(accelerator: Accelerator, params: Sequence[nn.Parameter], max_norm: float,
                   ) -> torch.Tensor | None:
    """``accelerator.clip_grad_norm_(params, max_norm)``, skipping the pass that multiplies every
    gradient by 1.0 when their norm is within ``max_norm``.

    Why: PyTorch multiplies by the clamped coefficient whatever it is, to spare a GPU the wait for
    the norm; on a CPU there is no wait, and that pass over every gradient is about 1.7 % of a
    one-thread PAN-X step, with the norm within bounds in 42 of XNLI's 76 steps in the pair
    benchmark (benchmarks/RESULTS.md, forty-ninth and fiftieth sessions). The same norm
    (accelerate's, with no clipping) and, where it clips, the same product by the same coefficient:
    results equal to the bit. Elsewhere (GPUs, no clipping asked) accelerate's call as it is.
    """
    if accelerator.device.type != "cpu" or max_norm == math.inf:
        return accelerator.clip_grad_norm_(params, max_norm)
    norm = accelerator.clip_grad_norm_(params, math.inf)
    if norm is not None and not bool(max_norm / (norm + 1e-6) >= 1.0):  # PyTorch's coefficient, clamped at 1
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return norm


def _host_values(loss: torch.Tensor, norm: torch.Tensor | float | None) -> tuple[float, float]:
    """The loss and the gradient norm (0.0 when there is none) as Python floats, in one device wait."""
    if isinstance(norm, torch.Tensor):
        loss_value, norm_value = torch.stack([loss.detach().float(), norm.detach().float().to(loss.device)]).tolist()
        return loss_value, norm_value
    return float(loss.detach()), 0.0 if norm is None else float(norm)


def train(
    encoder: nn.Module,
    jobs: Sequence[Job],
    hp: TrainConfig,
    runtime: RuntimeConfig,
    seed: int,
    pad_id: int,
    evaluate: Callable[[int], float],
    sampler: str = "proportional",
    temperature: float = 1.0,
    extra_loss: Callable[[int], torch.Tensor | None] | None = None,
    describe: str = "training",
    accelerator: Accelerator | None = None,
    tracker: RunTracker | None = None,
    on_best: Callable[[int], None] | None = None,
) -> Outcome:
    """Train ``encoder`` and the jobs' heads; leave them holding the best evaluated weights.

    ``on_best(step)`` is called whenever an evaluation becomes the new best, so a caller that keeps
    something of the best step (its predictions) follows this loop's rule instead of repeating it.

    With ``tracker``, every step's loss, learning rate and throughput are logged live (a caller's
    ``accelerator`` must then have been made with that tracker); the caller's ``evaluate`` logs scores.
    """
    rng = np.random.default_rng(seed)
    streams = [_batch_stream(job, hp, runtime.bucket_by_length, np.random.default_rng([seed, i]))
               for i, job in enumerate(jobs)]
    accum = hp.grad_accum_steps  # micro-batches per optimizer update; steps count updates
    batches_per_epoch = math.ceil(sum(math.ceil(len(j.features) / hp.batch_size) for j in jobs) / accum)
    total = hp.max_steps or max(1, int(round(hp.epochs * batches_per_epoch)))
    eval_every = hp.eval_every or max(1, batches_per_epoch)
    probs = sampling_probs([len(j.features) for j in jobs], sampler, temperature)

    accelerator = accelerator or make_accelerator(runtime, accum, tracker)
    accelerator.gradient_accumulation_steps = accum  # a caller's accelerator follows this phase
    prepared = accelerator.prepare(encoder, *[j.head for j in jobs])
    encoder, heads = prepared[0], list(prepared[1:])
    modules: list[nn.Module] = [encoder, *heads]
    optimizer = torch.optim.AdamW(param_groups(modules, hp.weight_decay), lr=hp.lr,
                                  **adamw_options(runtime, accelerator.device))
    schedule = get_linear_schedule_with_warmup(optimizer, int(hp.warmup_ratio * total), total)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    optimizer, schedule = accelerator.prepare(optimizer, schedule)
    device = accelerator.device

    # the same dropout masks, drawn faster (models/draws.py); only the forward pass draws. The mode
    # is held where the modules draw; around the whole forward pass only if no attention module is found
    kernel_draws = uses_draw_kernel(runtime, device.type, accelerator.unwrap_model(encoder))
    local_draws = kernel_draws and bool(draws.attention_modules(accelerator.unwrap_model(encoder)))
    if local_draws:
        for m in modules:
            draws.install(accelerator.unwrap_model(m))
    draw_scope = draws.drawing if local_draws else KernelDraws if kernel_draws else nullcontext
    out = Outcome()
    best_state: list[dict] | None = None
    since_best = 0
    for m in modules:
        m.train()

    from xstilts.progress import progress_bar

    if tracker is not None:
        tracker.start(accelerator)  # the caller finishes it (``with tracker:``)
    with progress_bar(describe, total, enabled=runtime.progress) as advance:
        for step in range(1, total + 1):
            t0 = time.perf_counter()
            step_loss = 0.0
            step_tokens = 0
            lr = float(optimizer.param_groups[0]["lr"])  # what this update uses (the schedule steps after it)
            for _ in range(accum):
                j = int(rng.choice(len(jobs), p=probs)) if len(jobs) > 1 else 0
                job = jobs[j]
                idx = next(streams[j])
                # every process draws the same global batch and trains on its slice (DDP averages)
                with accelerator.split_between_processes(idx, apply_padding=True) as mine:
                    batch = {k: v.to(device)
                             for k, v in job.kind.collate([job.features[i] for i in mine], pad_id).items()}
                out.train_positions += int(batch["input_ids"].numel())
                with accelerator.accumulate(*modules):
                    with accelerator.autocast(), draw_scope():
                        loss = job.kind.loss(heads[j](encoder, batch), batch)
                        if extra_loss is not None:
                            aux = extra_loss(step)
                            if aux is not None:
                                loss = loss + aux
                        loss = poison("loss", loss)  # XSTILTS_FAULT=loss:n:nan tests the check below
                    accelerator.backward(loss)  # divides by accum: the update of one big batch
                    norm = None
                    if accelerator.sync_gradients:
                        norm = clip_gradients(accelerator, params, hp.max_grad_norm)
                    optimizer.step()  # these three wait for the last micro-batch of the update
                    schedule.step()
                    optimizer.zero_grad(set_to_none=True)
                # the loss and the gradient norm reach the host together, one wait for the device per
                # micro-batch (the Trainer waits only when it logs; three waits a step cost a GPU's overlap)
                loss_value, norm_value = _host_values(loss, norm if runtime.precision != "fp16" else None)
                if not math.isfinite(loss_value):
                    raise TrainingError(f"{describe}: loss became {loss_value} at step {step}; stopping "
                                        "(try a lower learning rate)")
                # a finite loss with NaN/inf gradients has written NaN weights: stop before any evaluation
                # could select them; fp16's scaler skips such steps by design
                if not math.isfinite(norm_value):
                    raise TrainingError(f"{describe}: gradient norm became {norm_value} at step "
                                        f"{step}; stopping (try a lower learning rate)")
                step_tokens += sum(int(job.features[i]["length"]) for i in idx)
                step_loss += loss_value / accum
            step_seconds = time.perf_counter() - t0
            out.train_seconds += step_seconds
            out.train_tokens += step_tokens
            out.steps = step
            out.losses.append(step_loss)
            out.lrs.append(lr)
            if tracker is not None:
                tracker.log_step(step, step_loss, lr, step_tokens / step_seconds if step_seconds > 0 else 0.0)
            advance(1, loss=out.losses[-1])
            fault_point("train_step")

            if step % eval_every == 0 or step == total:
                recheck_threads(runtime, step, out.thread_log)  # before evaluating: it uses them too
                score = evaluate(step)
                out.evaluations += 1
                if score > out.best_score:
                    out.best_score, out.best_step, since_best = score, step, 0
                    best_state = [copy.deepcopy(m.state_dict()) for m in modules]
                    if on_best is not None:
                        on_best(step)
                else:
                    since_best += 1
                for m in modules:
                    m.train()
                if hp.patience is not None and since_best >= hp.patience:
                    break
            elif thread_cap_changed():  # a sibling run of the pool ended (or started): re-decide now
                recheck_threads(runtime, step, out.thread_log)

    if best_state is not None:
        for m, state in zip(modules, best_state, strict=True):
            m.load_state_dict(state)
    return out
