"""Run a plan several runs at a time on this machine, each run in a worker process.

``runtime.parallel_runs = N`` (N > 1) with ``executor = "local"``. Why: one run of a small model on
two CPU threads splits every operation across both cores, and the cores wait on each other at
each one (and swap the activations between their caches); two runs side by side, a core each,
keep both busy. On the 2-core Intel benchmark machine a BERT training step of the default model's
shape went 1.3-1.5x faster in total that way (benchmarks/RESULTS.md). A grid is mostly
independent runs, so the executor keeps N of them going.

The contract is every executor's (executors/__init__.py): runs already done are skipped; a run
starts once its phase-2 run has finished; the driver alone writes the store, each run as soon as
it finishes; every finished run is stored even when others fail, then an XstiltsError names the
failures (a failed phase-2 run fails its target runs unstarted). Phase-2 runs start first, then
the runs with the largest training budget (:func:`expected_work`). Ctrl-C stops the workers and
leaves the unfinished runs for the next invocation, as with the local executor.

Threads: with auto threads (``runtime.threads`` unset) every worker decides within the machine's
cores divided by the runs running now (:func:`xstilts.training.speed.set_thread_cap`), so N runs
take a core each and the last run standing takes every core at its next step (the loop sees the
bound change: :func:`xstilts.training.speed.thread_cap_changed`). A change of
thread count changes float rounding, so scores can differ from a one-at-a-time run's the way a
run's do between two thread counts (docs/reliability.md, "Determinism").
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from rich.console import Console

from xstilts.config import ExperimentConfig
from xstilts.context import RunContext
from xstilts.distributed import usable_cores
from xstilts.errors import ConfigError, XstiltsError, one_line
from xstilts.executors import unfinished_runs
from xstilts.executors.local import Runner, execute_run, parent_checkpoint, portable_context, run_in_worker
from xstilts.identity import link_parent
from xstilts.plan import Run
from xstilts.store import RunResult, Store

DIED = "a worker process died (killed, or out of memory); the pool stopped every run in progress"


def _init_worker(running: Any, cores: int) -> None:
    """In each worker: no tokenizer thread pools, and auto threads bounded by cores / runs running."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from xstilts.training.speed import set_thread_cap

    set_thread_cap(lambda: max(1, cores // max(1, running.value)))


def _run_in_worker(run: Run, ctx: RunContext, parent_dir: str | None, runner: Runner) -> tuple[RunResult, float]:
    """One run in a worker process; its result and wall time in seconds."""
    started = time.perf_counter()
    result = run_in_worker(runner, run, ctx, parent_dir)
    return result, time.perf_counter() - started


def expected_work(run: Run, cfg: ExperimentConfig) -> float:
    """A run's training budget as its config states it: examples x epochs x max_length (all examples:
    infinite). Why: started longest first, the grid's last runs are short ones, so the cores are not
    left to one long run at the end."""
    hp = cfg.intermediate.train if run.phase == "intermediate" else cfg.target.train_for(run.target or "")
    if hp.max_steps is not None:
        return float(hp.max_steps * hp.batch_size * hp.max_length)
    return (hp.max_train_examples or math.inf) * hp.epochs * hp.max_length


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Kill the workers (Ctrl-C, a store error): nothing may keep training after the driver has gone."""
    for proc in list(getattr(pool, "_processes", {}).values()):  # no public way before Python 3.14
        if proc.is_alive():
            proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def run_pool(plan: list[Run], ctx: RunContext, store: Store, console: Console | None = None,
             runner: Runner = execute_run) -> dict[str, int]:
    """Execute every unfinished run, ``runtime.parallel_runs`` at a time; returns counts done and skipped."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("under `accelerate launch` leave runtime.parallel_runs at 1 (each run is one "
                          "data-parallel job across the processes)")
    console = console or Console(stderr=True)
    counts = {"done": 0, "skipped": 0}
    todo = list(unfinished_runs(plan, store, console, counts))
    if not todo:
        return counts
    rt = ctx.cfg.runtime
    cores = usable_cores()
    if rt.threads and rt.threads * rt.parallel_runs > cores:
        console.print(f"note: {rt.parallel_runs} runs x {rt.threads} threads on {cores} cores "
                      "(leave runtime.threads unset to share the cores)")
    worker_ctx = portable_context(ctx)
    worker_ctx.cfg = ctx.cfg.model_copy(update={"runtime": rt.model_copy(update={"progress": False})})

    queued = {run.run_id for _, run in todo}
    ready = [(label, run) for label, run in todo if run.parent not in queued]
    waiting = [(label, run) for label, run in todo if run.parent in queued]  # for a phase-2 run of this plan
    order = {run.run_id: i for i, run in enumerate(plan)}

    def queue(items: list[tuple[str, Run]]) -> None:  # phase-2 runs first (they unlock others), then longest first
        items.sort(key=lambda item: (item[1].phase != "intermediate", -expected_work(item[1], ctx.cfg),
                                     order[item[1].run_id]))

    queue(ready)
    completed: set[str] = set()
    failed: dict[str, str] = {}
    mp = multiprocessing.get_context("spawn")  # not fork: the driver may hold torch's thread pools
    running_count = mp.Value("i", 0)
    running: dict[Future[tuple[RunResult, float]], tuple[str, Run]] = {}

    def fail(label: str, run: Run, message: str) -> None:
        failed[run.run_id] = message
        store.mark_failed(run.run_id, message)
        console.print(f"{label}: failed: {message}", highlight=False)

    pool = ProcessPoolExecutor(max_workers=min(rt.parallel_runs, len(todo)), mp_context=mp,
                               initializer=_init_worker, initargs=(running_count, cores))
    broken = False  # a worker died: the pool runs nothing more, the runs in progress fail with it
    try:
        while (ready and not broken) or running:
            while ready and not broken and len(running) < rt.parallel_runs:
                label, run = ready[0]
                parent_dir = parent_checkpoint(run, store)
                try:
                    future = pool.submit(_run_in_worker, run, worker_ctx, parent_dir, runner)
                except BrokenProcessPool:  # a worker died since the last wait: this run stays unstarted
                    broken = True
                    break
                ready.pop(0)
                store.mark_running(run.run_id)
                console.print(f"{label}: running")
                running[future] = (label, run)
            if not running:
                break
            running_count.value = len(running)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                label, run = running.pop(future)
                try:
                    result, seconds = future.result()
                except BrokenProcessPool:
                    broken = True
                    fail(label, run, DIED)
                    continue
                except Exception as exc:  # the run's own failure (bad data, NaN loss): recorded
                    fail(label, run, one_line(exc))
                    continue
                link_parent(result.extra, store.run(run.parent) if run.parent else None)
                store.complete_run(run.run_id, result, seconds)
                completed.add(run.run_id)
                counts["done"] += 1
                console.print(f"{label}: done in {seconds:.0f}s")
            for label, run in list(waiting):
                if run.parent in failed:
                    waiting.remove((label, run))
                    fail(label, run, f"its phase-2 run {run.parent} failed")
                elif run.parent in completed:
                    waiting.remove((label, run))
                    ready.append((label, run))
            queue(ready)
    except BaseException:
        _stop_workers(pool)
        raise
    pool.shutdown(wait=True)
    unstarted = len(ready) + len(waiting)
    rest = f"; {unstarted} run(s) not started" if unstarted else ""
    if failed:
        first = next(iter(failed.items()))
        raise XstiltsError(f"{len(failed)} run(s) failed (finished runs are stored; run again to retry the rest"
                           f"{rest}); first: {first[0]}: {first[1]}")
    if broken:  # a worker died between runs: nothing failed, but the rest could not start
        raise XstiltsError(f"{DIED} (finished runs are stored; run again to retry the rest{rest})")
    return counts
