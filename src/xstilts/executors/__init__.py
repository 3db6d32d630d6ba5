"""Executors: what runs the plan. Every executor has the same signature and the same contract.

Contract: runs already ``done`` in the store are skipped; a run's parent (its phase-2 run) has
finished before the run starts; each finished run reaches the store in one transaction, written
by the driver process only; the return value counts runs done now and skipped.

``local`` runs the plan in this process (and under ``accelerate launch``, in every process of
one data-parallel job), or with ``runtime.parallel_runs`` > 1 several runs at once in worker
processes on this machine (``pool``); ``ray`` runs every run as a Ray task on a cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.console import Console

    from xstilts.config import ExperimentConfig
    from xstilts.context import RunContext
    from xstilts.plan import Run
    from xstilts.store import Store


class Executor(Protocol):
    def __call__(self, plan: list[Run], ctx: RunContext, store: Store,
                 console: Console | None = None) -> dict[str, int]: ...


def unfinished_runs(plan: list[Run], store: Store, console: Console,
                    counts: dict[str, int]) -> Iterator[tuple[str, Run]]:
    """``(label, run)`` for each run not yet done, checked as it comes up; done ones are counted
    in ``counts["skipped"]`` and reported: the skipping part of the contract, for every executor."""
    for i, run in enumerate(plan, start=1):
        label = f"[{i}/{len(plan)}] {run.run_id}"
        if store.is_done(run.run_id):
            counts["skipped"] += 1
            console.print(f"{label}: already done, skipped")
            continue
        yield label, run


def get_executor(cfg: ExperimentConfig) -> Executor:
    """The executor a config names (imported lazily: Ray is an optional extra)."""
    if cfg.executor == "ray":
        from xstilts.executors.ray import run_ray

        return run_ray
    if cfg.runtime.parallel_runs > 1:
        from xstilts.executors.pool import run_pool

        return run_pool
    from xstilts.executors.local import run_local

    return run_local

