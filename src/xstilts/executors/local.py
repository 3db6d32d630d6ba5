"""Run a plan in this process, in dependency order, skipping every run already done.

A run's results reach the store in one transaction when it finishes; a run interrupted
(crash, Ctrl-C, SIGKILL) leaves no results and is simply run again next time.

Under ``accelerate launch`` every process walks the same plan (each run is one data-parallel
job); only the main process writes the store, and all wait for it after each run so that the
next run's skip check and parent lookup read the same store everywhere.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from xstilts.context import RunContext
from xstilts.distributed import process_state
from xstilts.errors import XstiltsError, one_line
from xstilts.identity import KEY, link_parent, recording, run_identity
from xstilts.plan import Run
from xstilts.store import RunResult, Store

Runner = Callable[[Run, RunContext, str | None], RunResult]  # what executes one run (tests pass their own)
_WORKER_TOKENIZERS: dict[str, Any] = {}  # per worker process (pool or Ray): XLM-R's takes seconds to load


def execute_run(run: Run, ctx: RunContext, parent_checkpoint: str | None) -> RunResult:
    """Execute one run of either phase and record its data and model identity (see :mod:`xstilts.identity`)."""
    from xstilts.checkpoint import ENCODER_FILE  # imports torch

    with recording() as read:
        result = _execute_phase(run, ctx, parent_checkpoint)
    written = Path(result.checkpoint) / ENCODER_FILE if run.phase == "intermediate" and result.checkpoint else None
    result.extra[KEY] = run_identity(read, ctx.data_dir, ctx.model_path, written)
    return result


def _execute_phase(run: Run, ctx: RunContext, parent_checkpoint: str | None) -> RunResult:
    """The phase's own function (imported here: phases pull in torch and transformers)."""
    if run.phase == "intermediate":
        from xstilts.phases.intermediate import run_intermediate

        return run_intermediate(run, ctx)
    from xstilts.tasks import get_task

    if not get_task(run.target or "").trainable:  # scored on the encoder as it is: no training
        from xstilts.phases.retrieval import run_retrieval

        return run_retrieval(run, ctx, parent_checkpoint)
    from xstilts.phases.target import run_target

    return run_target(run, ctx, parent_checkpoint)


def parent_checkpoint(run: Run, store: Store) -> str | None:
    if run.parent is None:
        return None
    parent = store.run(run.parent)
    if parent is None or parent["status"] != "done":
        raise XstiltsError(f"run {run.run_id} needs phase-2 run {run.parent}, which has not finished")
    return parent["checkpoint"]


def portable_context(ctx: RunContext) -> RunContext:
    """The context worker processes get: absolute paths (their cwd may not be ours), no loaded tokenizer."""
    model = ctx.model_path
    if Path(model).exists():
        model = str(Path(model).resolve())
    return dataclasses.replace(ctx, out_dir=ctx.out_dir.resolve(), data_dir=ctx.data_dir.resolve(),
                               cache_dir=ctx.cache_dir.resolve(), model_path=model, _tokenizer=None)


def run_in_worker(runner: Runner, run: Run, ctx: RunContext, parent_dir: str | None) -> RunResult:
    """``runner`` on a worker process's copy of the context, reusing the tokenizer an earlier run there loaded."""
    local = dataclasses.replace(ctx, _tokenizer=_WORKER_TOKENIZERS.get(ctx.model_path))
    result = runner(run, local, parent_dir)
    if local._tokenizer is not None:
        _WORKER_TOKENIZERS[ctx.model_path] = local._tokenizer
    return result


def run_local(plan: list[Run], ctx: RunContext, store: Store, console: Console | None = None,
              runner: Runner = execute_run) -> dict[str, int]:
    """Execute every unfinished run; returns counts of runs done now and skipped."""
    from xstilts.executors import unfinished_runs

    procs = process_state()
    main = procs.is_main_process
    console = console or Console(stderr=True, quiet=not main)
    counts = {"done": 0, "skipped": 0}
    procs.wait_for_everyone()  # the main process has registered the plan
    for label, run in unfinished_runs(plan, store, console, counts):
        console.print(f"{label}: running")
        if main:
            store.mark_running(run.run_id)
        started = time.perf_counter()
        try:
            result = runner(run, ctx, parent_checkpoint(run, store))
            if main:  # inside the try: a commit that fails (disk full) leaves a failed run, not 'running'
                link_parent(result.extra, store.run(run.parent) if run.parent else None)
                store.complete_run(run.run_id, result, time.perf_counter() - started)
        except Exception as exc:  # any failure (bad data, NaN loss, full disk) is recorded, then raised
            if main:
                try:
                    store.mark_failed(run.run_id, one_line(exc))
                except sqlite3.Error:  # the disk is still full: the run stays 'running', the cause is said
                    pass
            raise
        procs.wait_for_everyone()
        counts["done"] += 1
        console.print(f"{label}: done in {time.perf_counter() - started:.0f}s")
    return counts
