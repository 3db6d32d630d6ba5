"""The speed switches of :class:`~xstilts.config.RuntimeConfig`, applied to an encoder before training.

Each switch is independent and measured in ``benchmarks/RESULTS.md``:

- ``threads``: intra-op threads of this process (None = auto: the cores other processes leave
  free, at most PyTorch's default of one per core; see :func:`decide_threads`,
  re-decided between evaluation intervals by :func:`recheck_threads`, and at once when the pool
  executor's bound changes: :func:`thread_cap_changed`);
- ``trim_vocab``: train only the word-embedding rows the run's data uses
  (:mod:`xstilts.models.vocab`; exact, and checkpoints are saved full-vocabulary);
- ``freeze_embeddings``: no gradient for the word-embedding matrix (changes results);
- ``fused_adamw``: AdamW's update in one fused kernel (:func:`adamw_options`, used by the loop);
- ``fast_dropout``: the encoder's dropout masks from 16 random bits each
  (:mod:`xstilts.models.dropout`; another random stream, so it changes results);
- ``draw_kernel`` (default on): PyTorch's own dropout masks drawn by a compiled kernel in training
  (:mod:`xstilts.models.draws`; the same numbers bit for bit, so not in run ids; used by the loop
  where :func:`~xstilts.models.draws.available` and ``fast_dropout`` has left something to draw);
- ``onednn_linear`` (default ``"auto"``: on where PyTorch runs AVX-512 kernels): the encoder's fp32
  linear layers on a CPU through oneDNN rather than MKL (:mod:`xstilts.models.linear`; equal up to
  float rounding, so not in run ids);
- ``openblas_linear`` (default ``"auto"``: on an AMD CPU where PyTorch's kernels are not AVX-512 ones):
  the same layers through OpenBLAS's sgemm rather than MKL's (:mod:`xstilts.models.openblas`; equal up
  to float rounding, so not in run ids; it wins where both are on);
- ``fuse_qkv``: self-attention's query, key and value projections as one matrix product
  (:mod:`xstilts.models.fused_qkv`; equal up to float rounding, so not in run ids);
- ``first_token_only``: classification / multiple-choice heads get the last layer computed for the
  first token alone (:mod:`xstilts.models.first_token`; predictions equal up to rounding, training
  draws fewer dropout masks, so it changes results);
- ``first_token_train`` (default on): the same shortcut in training, drawing every dropout mask the
  full layer draws, so it changes nothing but rounding (not in run ids; not with ``pack_sequences``,
  whose masks fall on the packed layout);
- ``first_token_eval`` (default on): the same shortcut in evaluation, where it changes nothing
  but rounding (so not in run ids);
- ``pack_sequences``: training batches packed end to end with a block-diagonal attention mask
  (:mod:`xstilts.models.packing`; no padding; dropout falls on another layout, so it changes results);
- ``compile``: ``torch.compile`` the encoder, with dynamic shapes because bucketed batches vary
  in length (changes nothing but speed, after a one-off compilation per shape family).

``eval_batch_size`` (None: :func:`auto_eval_batch_size`), ``eval_workers`` (None:
:func:`auto_eval_workers`), ``bucket_by_length``
(training/batching.py) and ``bf16`` (the loop's autocast) act elsewhere; they are listed here
only so the switches are found in one place.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xstilts.config import RuntimeConfig
from xstilts.distributed import usable_cores
from xstilts.models import attention_kernel, draws, first_token, fused_qkv, linear, openblas, packing, unpadding
from xstilts.models.dropout import draws_with_pytorch, use_fast_dropout
from xstilts.models.vocab import trim_vocabulary, used_token_ids


@dataclass
class SpeedSetup:
    """What :func:`prepare_encoder` did, for a run's ``extra`` record."""

    threads: int
    thread_log: list[list[float | int | None]] = field(default_factory=list)  # ThreadChoice.log_entry
    vocab_rows: int | None = None  # rows kept by trimming (None: not trimmed)
    frozen_parameters: int = 0
    fast_dropout_modules: int = 0  # nn.Dropout modules swapped for models.dropout.FastDropout
    draw_kernel: bool = False  # PyTorch's dropout masks drawn by models/draws.py's kernel in training
    onednn_linear: int = 0  # linear layers whose fp32 CPU products go through oneDNN (models/linear.py)
    openblas_linear: int = 0  # ... through OpenBLAS (models/openblas.py)
    fused_qkv: int = 0  # self-attention modules projecting query, key and value in one product
    first_token_only: bool = False  # the last layer computes the first token alone in training, own draws
    first_token_train: bool = False  # ... in training, the full layer's draws (models/first_token.py)
    first_token_eval: bool = False  # ... in evaluation (first_token_only or runtime.first_token_eval)
    compiled: bool = False
    packed: bool = False  # training batches packed (models/packing.py)
    unpadded: int = 0  # layers computing real tokens only, attention padded (models/unpadding.py)
    attention_kernel: bool = False  # evaluation's attention on real tokens by models/attention_kernel.py
    attention_kernel_train: bool = False  # ... training's too
    precision: str = "no"  # autocast: "bf16", "fp16" or "no"; what runtime.bf16 = "auto" chose on this machine
    cudnn_attention: bool | None = None  # SDPA's cuDNN backend on a CUDA device (None: not a CUDA run)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_initial_threads: int | None = None  # the process's thread count before xstilts first changed it
_thread_cap: Callable[[], int] | None = None  # set in the pool executor's workers (set_thread_cap)
_cap_seen: int | None = None  # the bound the latest auto decision was taken within


def set_thread_cap(cap: Callable[[], int] | None) -> None:
    """Bound every later auto-thread decision of this process by ``cap()`` (None: no bound).

    Why: the pool executor (executors/pool.py) runs several runs at once, one process each, and
    tells each the cores it may use (the machine's cores over the runs running now). A sibling run
    pausing for a moment (saving a checkpoint, loading the next model) would otherwise read as a
    free core, and a run that took it would share a core with the sibling until its next check.
    """
    global _thread_cap, _cap_seen
    _thread_cap, _cap_seen = cap, None


def thread_cap_changed() -> bool:
    """True when the pool's bound differs from the one the latest auto decision was taken within.

    Why: the bound rises when a sibling run ends with nothing left to start (the grid's last run
    standing) and falls when one starts beside this run. Checked at every step (a read of a shared
    counter), it lets the loop re-decide at once rather than at its next evaluation, which at one
    thread can be a minute away with the other core idle meanwhile.
    """
    return _thread_cap is not None and _cap_seen is not None and _thread_cap() != _cap_seen


SCHED_IDLE = 5  # scheduling policy number of idle-priority processes (``chrt --idle``)


@dataclass(frozen=True)
class Sched:
    """What decides whether a process yields its core to another: nice value, policy, autogroup."""

    nice: int
    idle_policy: bool
    autogroup: tuple[str, int] | None  # (group name, group nice); None where autogroup is off/unknown


def _autogroup_enabled() -> bool:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def _read_autogroup(pid: int | str) -> tuple[str, int] | None:
    """``/proc/PID/autogroup`` ("/autogroup-290 nice 0") as (name, nice)."""
    try:
        name, _, nice = Path(f"/proc/{pid}/autogroup").read_text().split()
        return name, int(nice)
    except (OSError, ValueError):
        return None


def yields_to(other: Sched, mine: Sched) -> bool:
    """Whether a busy process with scheduling ``other`` leaves its core to one with ``mine``.

    Why: a ``nice -19`` job yields its core to a nice-0 process, so counting it as busy left a core
    idle (a quickstart XNLI run at 1 thread for 552 s instead of 253 s at 2; issue 14). It yields only
    within one scheduling group, though: with the kernel's autogroup on (the default on desktops),
    each session (terminal, ``setsid``) is a group that gets an equal share whatever its processes'
    nice values, unless the group itself is niced. Idle-priority processes yield to everything.
    """
    lower = other.idle_policy or other.nice > mine.nice
    if mine.autogroup is None:  # groups off or unreadable: nice values decide
        return lower
    if other.autogroup is None:  # its group is unknown while ours is known: assume it competes
        return False
    if other.autogroup[0] == mine.autogroup[0]:
        return lower
    return other.autogroup[1] > mine.autogroup[1]  # another group yields only if the group is niced


def _sched_of(pid: int | str, stat_fields: list[str], groups: bool) -> Sched:
    nice, policy = int(stat_fields[16]), int(stat_fields[38])
    return Sched(nice, policy == SCHED_IDLE, _read_autogroup(pid) if groups else None)


def _stat_fields(pid: int | str) -> list[str]:
    """/proc/PID/stat after the command name (which may hold spaces): field 3 onwards."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
        return fh.read().rsplit(")", 1)[1].split()


def _yielding_processes(mine: Sched, groups: bool) -> dict[int, int]:
    """CPU jiffies so far (user + system) of every other process that yields to this one."""
    me = os.getpid()
    out: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            fields = _stat_fields(entry.name)
            if yields_to(_sched_of(entry.name, fields, groups), mine):
                out[int(entry.name)] = int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we read it
    return out


def busy_jiffies(stat_line: str) -> int:
    """The jiffies this machine's own processes and interrupts kept its CPUs busy, from /proc/stat's
    first line: user nice system irq softirq. Not idle or iowait, and not steal.

    Why not steal: it is time a virtual machine's host gave to other guests, and no thread count
    chosen in here wins it back; halving the threads then only leaves a virtual CPU idle. On the
    2-core benchmark VM (2026-12-01) the host took up to 0.4 of a core in 10-s bursts (12,922
    jiffies in 45 min); while steal still counted, a quickstart run alone in the VM read 0.57 busy
    cores with no other runnable process there (steal by elimination: it was not logged at that
    minute), trained 39 steps on one thread while the load average fell to 1.0, and took twice the
    time of the same run beside a niced busy loop (benchmarks/RESULTS.md).
    """
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in stat_line.split()[1:8])
    return user + nice + system + irq + softirq


def _cpu_jiffies() -> tuple[int, int, dict[int, int]]:
    """(busy jiffies of the whole machine, this process's utime + stime, yielding processes' jiffies).

    The machine's busy jiffies are :func:`busy_jiffies`'. The third value sums, over other processes
    that would yield their core to this one, their CPU time so far; only the processes alive at both
    readings of a window are compared.
    """
    with open("/proc/stat", encoding="ascii") as fh:
        busy = busy_jiffies(fh.readline())
    own = _stat_fields("self")
    groups = _autogroup_enabled()
    mine = _sched_of("self", own, groups)
    return busy, int(own[11]) + int(own[12]), _yielding_processes(mine, groups)


# (time.monotonic(), _cpu_jiffies()) of the latest reading, the start of the next window
_last_reading: tuple[float, tuple[int, int, dict[int, int]]] | None = None
REUSE_WINDOW_S = (0.25, 300.0)  # a window since the latest reading must be this long (s) to be used
STALLED, FRESH_TRIES = 4.0, 3  # a fresh window that took 4× its length is measured again, up to 3 times


def other_busy_cores(window_s: float = 0.25) -> float | None:
    """Cores kept busy by *other* processes that compete with this one, on average over a window.

    The window runs from the latest reading (the previous decision: the training interval since the
    last evaluation) when that is between 0.25 s and 5 min old, else it is a fresh ``window_s`` of
    sleep. Why reuse: the loop re-decides between evaluation intervals, and a 0.25 s sleep at each
    check left both cores idle for 4 s per quickstart seed; the interval's average is also a
    steadier measure than a quarter second. A competitor of our own priority is measured while it
    shares the cores with us, so it shows less than it would take alone: one busy process beside
    our 2 threads on 2 cores shows about 2/3 of a core, which still rounds to one core taken.

    Busy time is divided by the time that passed between the two readings, not by the sleep asked
    for. A fresh window that took over 4× its length is measured again (up to 3 tries): the
    process was stopped or starved midway, and the others' time then is not what they take beside
    it. Found 2026-12-01: a benchmark that time-slices processes with SIGSTOP stopped one in its
    0.25 s window while the other sides ran on both cores; divided by 0.25 s that read as 9.8 busy
    cores, and the run trained its whole XNLI phase on one thread.

    Processes that yield to this one (:func:`yields_to`: niced or idle-priority in our scheduling
    group) are not counted, nor is a VM host's stolen time (:func:`busy_jiffies`); a process too
    short-lived to be seen at both readings is counted as competing. None where /proc is missing.
    Why not the load average: it counts this process too, so after one training run at two threads
    on two cores the next run saw a load of 2, took the machine for oversubscribed and trained at
    half speed (the quickstart, 2026-11-25). The load average also lags by a minute.
    """
    global _last_reading
    try:
        now = time.monotonic()
        if _last_reading is not None and REUSE_WINDOW_S[0] <= now - _last_reading[0] <= REUSE_WINDOW_S[1]:
            (started, (busy0, own0, yielding0)), reading = _last_reading, _cpu_jiffies()
            ended = time.monotonic()
        else:
            for _ in range(FRESH_TRIES):
                started, (busy0, own0, yielding0) = time.monotonic(), _cpu_jiffies()
                time.sleep(window_s)
                reading, ended = _cpu_jiffies(), time.monotonic()
                if ended - started <= STALLED * window_s:
                    break  # else this process was stopped or starved midway: measure again
    except (OSError, ValueError, IndexError):
        return None
    _last_reading = (ended, reading)
    busy1, own1, yielding1 = reading
    seconds = max(ended - started, 1e-6)
    yielded = sum(max(0, j - yielding0[pid]) for pid, j in yielding1.items() if pid in yielding0)
    busy = (busy1 - busy0) - (own1 - own0) - yielded
    return max(0.0, busy / os.sysconf("SC_CLK_TCK") / seconds)


@dataclass
class ThreadChoice:
    """One decision of :func:`decide_threads`, kept in the run's record (``speed.thread_log``)."""

    threads: int
    other_cores: float | None  # what other processes used (or the load average); None: not measured
    first_reading: float | None = None  # where that was a confirming second reading: the first one

    def log_entry(self, step: int) -> list[float | int | None]:
        """``[step, threads, other_cores]``, plus the first reading where a second one confirmed it."""
        entry: list[float | int | None] = [step, self.threads, self.other_cores]
        return entry if self.first_reading is None else [*entry, self.first_reading]


CONFIRM_WINDOW_S = 1.0  # a reading that would take threads away is checked again over this long


def _threads_for(others: float, cores: int, initial: int) -> int:
    return max(1, min(initial, round(cores - others)))


def decide_threads(runtime: RuntimeConfig) -> ThreadChoice:
    """``runtime.threads``, or (None) the cores other processes leave free, within the initial count.

    Why: PyTorch's CPU kernels synchronise their threads at every operation; when the cores are
    shared with other busy processes one of them is often descheduled and the rest wait for it.
    On this 2-core machine under a load of 10, one thread trained 7.6× faster than two
    (benchmarks/RESULTS.md); on the idle machine two threads train 1.8× faster than one. The
    "initial count" is PyTorch's default or what an executor set (the Ray executor sets one per
    run), so auto never raises it; the pool executor's bound (:func:`set_thread_cap`) lowers it
    while sibling runs share the cores. Without /proc, the 1-minute load average stands in.

    A reading that would lower the current count (below the bound) is confirmed by a second one over a fresh
    :data:`CONFIRM_WINDOW_S` window, and the second decides. Why: the first check of a process is
    a 0.25-s window, in which a moment's work of any other process reads as most of a core; on
    2026-12-01 19:42 the quickstart's first check read 0.69 busy cores on a quiet machine (no later
    check above 0.02) and its first run trained 17 steps on one of two cores. A competitor that
    persists is seen in both windows; a blip of 0.2 core-seconds reads 0.2 cores over a second,
    which takes no thread away. It costs a second's wait only when threads would be dropped.

    Where the pool's bound changed since the latest decision, the window is a fresh one: the
    interval since the latest reading holds the work of a sibling that has since ended (or not yet
    started), which would read as a busy core.
    """
    global _initial_threads, _cap_seen, _last_reading
    if _initial_threads is None:
        _initial_threads = torch.get_num_threads()
    if runtime.threads:
        return ThreadChoice(runtime.threads, None)
    if _thread_cap is not None:
        if thread_cap_changed():
            _last_reading = None
        _cap_seen = _thread_cap()
    initial = _initial_threads if _cap_seen is None else max(1, min(_initial_threads, _cap_seen))
    cores = usable_cores()
    others = other_busy_cores()
    if others is None:
        try:
            others = os.getloadavg()[0]
        except OSError:  # not available on this platform
            return ThreadChoice(initial, None)
        return ThreadChoice(_threads_for(others, cores, initial), round(others, 2))
    threads = _threads_for(others, cores, initial)
    if threads < min(torch.get_num_threads(), initial):  # the reading takes threads away: confirm it
        again = other_busy_cores(CONFIRM_WINDOW_S)
        if again is not None:
            first, others = others, again
            threads = _threads_for(others, cores, initial)
            return ThreadChoice(threads, round(others, 2), round(first, 2))
    return ThreadChoice(threads, round(others, 2))


def choose_threads(runtime: RuntimeConfig) -> int:
    """The thread count :func:`decide_threads` picks."""
    return decide_threads(runtime).threads


def apply_threads(runtime: RuntimeConfig) -> ThreadChoice:
    """Set this process's intra-op thread count (see :func:`decide_threads`); return the decision."""
    choice = decide_threads(runtime)
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    return choice


def recheck_threads(runtime: RuntimeConfig, step: int, log: list[list[float | int | None]]) -> None:
    """Re-decide auto threads mid-run and log ``[step, threads, other_cores]``; explicit counts stay.

    Why: a decision taken once at the start of a run outlives the load it saw; a job that starts or
    ends mid-run would otherwise leave this run oversubscribed, or a core idle, for the rest of it.
    The loop calls this between evaluation intervals; it measures the interval just trained
    (:func:`other_busy_cores`), so it costs no waiting. It also calls it after any step where the
    pool's bound changed (:func:`thread_cap_changed`); that decision measures a fresh 0.25-s window.
    """
    if runtime.threads:
        return
    choice = apply_threads(runtime)
    log.append(choice.log_entry(step))


def freeze_input_embeddings(encoder: nn.Module) -> int:
    """Stop gradients into the word-embedding matrix (position/type embeddings still train)."""
    weight = encoder.get_input_embeddings().weight
    weight.requires_grad_(False)
    return weight.numel()


def compile_encoder(encoder: nn.Module) -> None:
    """Compile the encoder's forward in place; ``dynamic`` avoids one recompilation per batch length."""
    encoder.compile(dynamic=True)


def adamw_options(runtime: RuntimeConfig, device: torch.device) -> dict[str, Any]:
    """Keyword arguments for ``torch.optim.AdamW``: the fused kernel where it exists.

    Why: the default CPU implementation loops over ~200 parameter tensors with several kernels
    each; the fused one does the update in one pass (45 vs 160 ms per step for the trimmed
    default model on one core), with the same arithmetic up to rounding.
    """
    if runtime.fused_adamw and device.type in ("cpu", "cuda"):
        return {"fused": True}
    return {}


def auto_eval_batch_size(device_type: str) -> int:
    """Evaluation batch size when ``runtime.eval_batch_size`` is None.

    Why not "as large as fits": on this CPU inference over length-sorted XNLI / PAN-X dev batches
    ran 1.5-1.7× faster with batches of 16-32 than of 128 (2,700-3,700 vs 1,700-2,300 real
    tokens/s; benchmarks/RESULTS.md). Accelerators want large batches.
    """
    return 32 if device_type == "cpu" else 128


def auto_eval_workers(device_type: str, batches: int | None = None) -> int:
    """Evaluation threads when ``runtime.eval_workers`` is None: on a CPU, the intra-op thread count,
    or 1 where there are fewer than 4 ``batches`` per thread.

    Why: an evaluation batch of the default model is small (32 rows of ~40 tokens): two threads
    splitting each operation wait on each other at every one of them (attention, GELU and layer norm
    barely speed up), while two batches side by side, one core each, keep both cores busy. On 2
    Intel cores in bf16 that predicted the quickstart's dev sets 1.17× (XNLI) / 1.36× (PAN-X)
    faster; in fp32, where the matrix products dominate, 1.02× (benchmarks/RESULTS.md). Auto threads
    (:func:`decide_threads`) already chose the count for the load, so a busy machine gets one worker.
    A few batches are not worth splitting: the longest one on one core then takes most of the time
    (40 XNLI pairs, two batches: 0.25 s on two workers, 0.19 s on one). Accelerators run one
    batch at a time.
    """
    if device_type != "cpu":
        return 1
    threads = max(1, torch.get_num_threads())
    return threads if batches is None or batches >= 4 * threads else 1


def _device_type() -> str:
    """Where a run will train: the accelerator Accelerate picks when there is one, else the CPU."""
    current = getattr(torch, "accelerator", None)
    found = current.current_accelerator() if current is not None else None
    return found.type if found is not None else "cpu"


def uses_draw_kernel(runtime: RuntimeConfig, device_type: str = "cpu", encoder: nn.Module | None = None) -> bool:
    """Whether the training loop draws dropout masks with :mod:`xstilts.models.draws`' kernel: asked
    for, on a CPU, shown there to draw what PyTorch draws (it builds the kernel at first use), and --
    given the ``encoder`` -- left something to draw by ``fast_dropout`` (:func:`draws_with_pytorch`;
    a head's own small dropout then draws with PyTorch, the same numbers)."""
    return (runtime.draw_kernel and device_type == "cpu" and not runtime.compile
            and (encoder is None or draws_with_pytorch(encoder)) and draws.available())


def install_first_token(encoder: nn.Module, runtime: RuntimeConfig) -> tuple[bool, bool, bool]:
    """The runtime's first-token shortcut (models/first_token.py). In training: its own draws with
    ``first_token_only``, else the full layer's draws with ``first_token_train`` (not where packing
    is on: a packed row holds several first tokens, and its masks fall on the packed layout). In
    evaluation with ``first_token_only`` or ``first_token_eval``. Returns (own draws, same draws, evaluation); all False
    where the encoder is not BERT-shaped. Prediction-only callers use it as is."""
    own = runtime.first_token_only
    same = not own and runtime.first_token_train and not runtime.pack_sequences
    if not (own or same or runtime.first_token_eval):
        return False, False, False
    bert_shaped = first_token.install(encoder, train="own-draws" if own else "same-draws" if same else "no",
                                      evaluation=own or runtime.first_token_eval)
    return bert_shaped and own, bert_shaped and same, bert_shaped and (own or runtime.first_token_eval)


def prepare_encoder(encoder: nn.Module, runtime: RuntimeConfig,
                    feature_sets: Iterable[Sequence[dict[str, Any]]] = (), pad_id: int | None = None,
                    ) -> SpeedSetup:
    """Apply the runtime's speed switches to ``encoder`` (in place) before a training phase.

    ``feature_sets`` must cover every feature the encoder will see (training *and* evaluation):
    trimming keeps exactly their token ids, and a later id outside them is an error.
    """
    choice = apply_threads(runtime)
    setup = SpeedSetup(threads=choice.threads, thread_log=[choice.log_entry(0)], precision=runtime.precision)
    pad = pad_id if pad_id is not None and pad_id >= 0 else None  # a real padding id, or none
    if runtime.fuse_qkv:  # before trimming: its check feeds token ids the data may not have
        setup.fused_qkv = fused_qkv.install(encoder)
    if runtime.pack_sequences:  # before trimming: its check feeds token ids the data may not have
        packing.install(encoder, pad if pad is not None else 0)
        setup.packed = True
    if runtime.trim_vocab:
        extra = [pad] if pad is not None else []
        trimmed = trim_vocabulary(encoder, used_token_ids(feature_sets, extra))
        setup.vocab_rows = len(trimmed.kept)
    if runtime.freeze_embeddings:
        setup.frozen_parameters = freeze_input_embeddings(encoder)
    if runtime.fast_dropout:
        setup.fast_dropout_modules = use_fast_dropout(encoder)
    setup.first_token_only, setup.first_token_train, setup.first_token_eval = install_first_token(encoder, runtime)
    setup.draw_kernel = uses_draw_kernel(runtime, _device_type(), encoder)
    if not runtime.compile and _device_type() == "cpu":
        if openblas.wanted(runtime.openblas_linear):
            setup.openblas_linear = openblas.install(encoder)
        if not setup.openblas_linear and linear.wanted(runtime.onednn_linear):
            setup.onednn_linear = linear.install(encoder)
    # with packing too: packed training rows fall back to the padded path (their mask is not a key-padding
    # mask), evaluation's padded batches are unpadded
    if runtime.unpad and not runtime.compile and _device_type() == "cpu":
        setup.unpadded = unpadding.install(encoder, runtime.unpad_min_padding,
                                           attention_kernel.wanted(runtime.attention_kernel),
                                           runtime.attention_kernel_train)
        setup.attention_kernel = bool(setup.unpadded) and unpadding.kernel_installed(encoder)
        setup.attention_kernel_train = bool(setup.unpadded) and unpadding.train_kernel_installed(encoder)
    if runtime.compile:
        compile_encoder(encoder)
        setup.compiled = True
    setup.cudnn_attention = set_cudnn_attention(runtime, _device_type())
    return setup


def set_cudnn_attention(runtime: RuntimeConfig, device_type: str) -> bool | None:
    """Switch SDPA's cuDNN backend for this process on a CUDA device (None elsewhere: nothing to do).

    Why: cuDNN's attention plans are per shape, so length-bucketed batches (a new width most steps)
    spend ~130 ms a step building plans early in a run (H200, RESULTS.md); the flash and
    memory-efficient kernels SDPA falls back to need no plan and ran as fast once warm.
    """
    if device_type != "cuda":
        return None
    torch.backends.cuda.enable_cudnn_sdp(runtime.cudnn_attention)
    return runtime.cudnn_attention
