"""Run the plan on a Ray cluster: every run is one Ray task with its own resource request.

Why Ray: the grid is embarrassingly parallel except that a target run needs its phase-2
checkpoint. Ray gives us scheduling on CPUs/GPUs, dependencies (a target task receives its
parent task's ObjectRef, so Ray starts it only once the parent has finished), and retries when
a worker or node dies, without a scheduler of our own.

Data flow: a task trains in a scratch directory on its worker; a phase-2 task uploads its
encoder checkpoint to ``ray.shared_dir`` (a path on a shared filesystem or any fsspec URL such
as ``s3://bucket/exp``) and a target task downloads its parent's checkpoint from there. Results
come back to the driver, which alone writes the SQLite store, each run as soon as it finishes
(``ray.wait``). Runs already done are skipped, exactly as with the local executor, so a
re-submitted experiment only runs what is missing. ``data_dir`` and the tokenisation cache
must be readable at the same path on every node (a shared filesystem).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

from rich.console import Console

from xstilts.context import RunContext
from xstilts.errors import ConfigError, XstiltsError
from xstilts.executors import unfinished_runs
from xstilts.executors.local import Runner, execute_run, parent_checkpoint, portable_context, run_in_worker
from xstilts.identity import link_parent
from xstilts.plan import Run
from xstilts.store import RunResult, Store


# ---- checkpoints through the shared directory (fsspec) -------------------------------------------
def checkpoint_url(shared_dir: str, run_id: str) -> str:
    """Where a run's checkpoint lives in the shared directory (same spelling: path or URL)."""
    return f"{shared_dir.rstrip('/')}/{run_id}"


def publish_checkpoint(local_dir: Path, url: str) -> str:
    """Copy every file of a local checkpoint directory to ``url`` (any fsspec filesystem)."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    fs.makedirs(root, exist_ok=True)
    for f in sorted(Path(local_dir).iterdir()):
        if f.is_file():
            fs.put_file(str(f), f"{root}/{f.name}")
    return url


def fetch_checkpoint(url: str, dest: Path) -> Path:
    """Copy a checkpoint directory from ``url`` (path or fsspec URL) into the local ``dest``."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    if not fs.isdir(root):
        raise XstiltsError("phase-2 checkpoint is missing from the shared directory", url)
    dest.mkdir(parents=True, exist_ok=True)
    for remote in fs.find(root):
        target = dest / PurePosixPath(remote).relative_to(PurePosixPath(root))
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(remote, str(target))
    return dest


# ---- the task ------------------------------------------------------------------------------------
def run_on_worker(run: Run, ctx: RunContext, parent: RunResult | tuple[RunResult, float] | str | None,
                  shared_dir: str, runner: Runner = execute_run) -> tuple[RunResult, float]:
    """One run on a Ray worker; returns its result and its wall time in seconds.

    ``parent`` is the parent task's return value (Ray resolved its ObjectRef) or, when the parent
    finished in an earlier submission, the checkpoint URL the store holds.
    """
    import torch

    started = time.perf_counter()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(ctx.cfg.runtime.threads or max(1, int(ctx.cfg.ray.cpus_per_run)))
    with tempfile.TemporaryDirectory(prefix="xstilts-") as scratch:
        local = dataclasses.replace(ctx, out_dir=Path(scratch))  # checkpoints land in the scratch dir
        parent_dir = None
        if parent is not None:
            if isinstance(parent, tuple):
                parent = parent[0]
            url = parent if isinstance(parent, str) else parent.checkpoint
            if url is None:
                raise XstiltsError(f"run {run.run_id}: its phase-2 run {run.parent} returned no checkpoint")
            parent_dir = str(fetch_checkpoint(url, Path(scratch) / "parent"))
        result = run_in_worker(runner, run, local, parent_dir)  # Ray reuses workers: so does the tokenizer
        if result.checkpoint is not None:
            url = checkpoint_url(shared_dir, run.run_id)
            result.checkpoint = publish_checkpoint(Path(result.checkpoint), url)
    return result, time.perf_counter() - started


# ---- the driver ----------------------------------------------------------------------------------
def _connect(ray: Any, ctx: RunContext) -> bool:
    """Connect to the configured cluster (or start a local instance); True if we started Ray here."""
    if ray.is_initialized():
        return False
    rc = ctx.cfg.ray
    kwargs: dict[str, Any] = {"address": rc.address, "runtime_env": rc.runtime_env or None}
    if rc.address is None:
        kwargs.update(num_cpus=rc.num_cpus, include_dashboard=False)
    elif rc.num_cpus is not None:
        raise ConfigError("ray.num_cpus sizes a local instance; leave it out when ray.address is set")
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = rc.address or "a new local instance"
        raise XstiltsError(f"cannot start Ray on {where}: {str(exc).strip().splitlines()[0]}") from exc
    return True


def _error_line(exc: BaseException) -> str:
    """One line for the store and the console, from whatever Ray raised."""
    cause = getattr(exc, "cause", None) or exc
    if isinstance(cause, XstiltsError):
        return cause.one_line()
    text = str(cause).strip()
    return f"{type(cause).__name__}: {text.splitlines()[-1] if text else ''}".strip().rstrip(":")


def run_ray(plan: list[Run], ctx: RunContext, store: Store, console: Console | None = None,
            runner: Runner = execute_run) -> dict[str, int]:
    """Execute every unfinished run as a Ray task; returns counts of runs done now and skipped.

    Every finished run is stored even when others fail; then an XstiltsError names the failures.
    """
    try:
        import ray
    except ImportError:
        raise XstiltsError("executor = 'ray' needs Ray: pip install 'xstilts[ray]'") from None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("under `accelerate launch` use executor = 'local' (Ray schedules whole runs)")
    console = console or Console(stderr=True)
    rc = ctx.cfg.ray
    started_here = _connect(ray, ctx)
    try:
        worker_ctx = portable_context(ctx)
        shared_dir = rc.shared_dir or str(worker_ctx.out_dir / "checkpoints")
        ctx_ref = ray.put(worker_ctx)
        runner_ref = ray.put(runner)
        task = ray.remote(run_on_worker)
        resources: dict[str, Any] = {"num_cpus": rc.cpus_per_run, "num_gpus": rc.gpus_per_run,
                                     "max_retries": rc.max_retries, "retry_exceptions": rc.retry_exceptions}
        if rc.memory_gb_per_run is not None:
            resources["memory"] = int(rc.memory_gb_per_run * 1024**3)

        counts = {"done": 0, "skipped": 0}
        refs: dict[str, Any] = {}  # run id -> ObjectRef of its task, for its children
        pending: dict[Any, tuple[str, Run, float]] = {}
        for label, run in unfinished_runs(plan, store, console, counts):
            parent: Any = None
            if run.parent is not None:  # an ObjectRef: Ray starts this task once the parent returned
                parent = refs[run.parent] if run.parent in refs else parent_checkpoint(run, store)
            ref = task.options(name=run.run_id, **resources).remote(run, ctx_ref, parent, shared_dir,
                                                                     runner_ref)
            refs[run.run_id] = ref
            pending[ref] = (label, run, time.perf_counter())
            store.mark_running(run.run_id)
        if pending:
            console.print(f"{len(pending)} run(s) submitted to Ray")

        failed: dict[str, str] = {}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    label, run, submitted = pending.pop(ref)
                    try:
                        result, seconds = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        message = _error_line(exc)
                        if run.parent in failed:
                            message = f"its phase-2 run {run.parent} failed"
                        failed[run.run_id] = message
                        store.mark_failed(run.run_id, message)
                        console.print(f"{label}: failed: {message}", highlight=False)
                        continue
                    link_parent(result.extra, store.run(run.parent) if run.parent else None)
                    store.complete_run(run.run_id, result, seconds)
                    counts["done"] += 1
                    console.print(f"{label}: done in {seconds:.0f}s ({time.perf_counter() - submitted:.0f}s "
                                  "since submission)")
        except BaseException:
            for ref in pending:  # Ctrl-C or a store error: leave nothing running on the cluster
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - best effort while already failing
                    pass
            raise
        if failed:
            first = next(iter(failed.items()))
            raise XstiltsError(f"{len(failed)} run(s) failed (finished runs are stored; run again to retry "
                               f"the rest); first: {first[0]}: {first[1]}")
        return counts
    finally:
        if started_here:
            ray.shutdown()
