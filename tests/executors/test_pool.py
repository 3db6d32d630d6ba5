"""The pool executor (``runtime.parallel_runs``) against the local executor, on the tiny model.

A 2-setting × 2-target × 2-seed grid run two at a time in worker processes must fill the store with
exactly what the one-at-a-time executor writes (one fixed thread per run: the same arithmetic); a
re-run skips everything. A phase-2 run that fails fails its targets unstarted while every other
run is stored; a worker killed mid-run is recorded, nothing is left 'running', and the next
invocation finishes the experiment, also when the driver finds the pool broken as it starts a
run. Ctrl-C in the driver kills every worker (none trains on after the command has returned) and
the next invocation finishes.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
from _grid import grid_config, run_local_then, snapshot
from typer.testing import CliRunner

from xstilts.cli import app
from xstilts.config import load_config
from xstilts.context import RunContext
from xstilts.errors import XstiltsError
from xstilts.executors import get_executor
from xstilts.executors import pool as pool_module
from xstilts.executors.local import execute_run
from xstilts.executors.pool import expected_work, run_pool
from xstilts.plan import make_plan
from xstilts.store import Store
from xstilts.training.speed import _stat_fields

PARALLEL = "[runtime]\nparallel_runs = 2\n"


def _pool_config(path: Path, tiny_model: Path, mini_data: Path, out: Path, cache: Path,
                 seeds: list[int]) -> Path:
    """grid_config's experiment with two runs at once (its [runtime] table gains the key)."""
    grid_config(path, tiny_model, mini_data, out, cache, seeds)
    path.write_text(path.read_text(encoding="utf-8").replace("[runtime]\n", PARALLEL), encoding="utf-8")
    return path


def test_pool_store_equals_local_store(tiny_model: Path, mini_data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    local_cfg = grid_config(tmp_path / "local.toml", tiny_model, mini_data, tmp_path / "local", cache, [1, 2])
    pool_cfg = _pool_config(tmp_path / "pool.toml", tiny_model, mini_data, tmp_path / "pool", cache, [1, 2])
    assert get_executor(load_config(pool_cfg)) is run_pool

    said = run_local_then(local_cfg, pool_cfg)
    assert "(local executor, 2 runs at once)" in said and "10 run(s) done now, 0 already done" in said

    local, pooled = snapshot(tmp_path / "local"), snapshot(tmp_path / "pool")
    assert len(local["runs"]) == 10 and all(r[1] == "done" for r in local["runs"])
    assert pooled == local  # same runs, same scores to the last bit, same per-example rows

    runner = CliRunner()
    again = runner.invoke(app, ["run", str(pool_cfg)])
    assert again.exit_code == 0, again.output
    assert "0 run(s) done now, 10 already done" in again.output


def failing_runner(run, ctx, parent, *, victim: str, kill: bool):  # noqa: ANN001, ANN201
    """Runs normally, except the victim run: it raises, or its worker process is SIGKILLed."""
    if run.run_id.startswith(victim):
        if kill:
            os.kill(os.getpid(), signal.SIGKILL)
        raise ValueError("bad line 3 in the victim's data")
    return execute_run(run, ctx, parent)


def _experiment(tmp_path: Path, tiny_model: Path, mini_data: Path, name: str) -> tuple[RunContext, list]:
    path = _pool_config(tmp_path / f"{name}.toml", tiny_model, mini_data, tmp_path / name, tmp_path / "cache", [1])
    cfg = load_config(path)
    plan = make_plan(cfg)
    ctx = RunContext.create(cfg)
    with Store(ctx.out_dir) as store:
        for r in plan:
            store.register_run(r.run_id, r.phase, r.setting, r.target, r.seed, r.config_hash, r.parent)
        store.set_meta("plan", [r.run_id for r in plan])
    return ctx, plan


def test_a_failed_phase2_run_fails_its_targets_and_the_rest_are_stored(tiny_model: Path, mini_data: Path,
                                                                      tmp_path: Path) -> None:
    ctx, plan = _experiment(tmp_path, tiny_model, mini_data, "fail")
    raising = functools.partial(failing_runner, victim="int-sick", kill=False)
    with Store(ctx.out_dir) as store:
        with pytest.raises(XstiltsError, match=r"3 run\(s\) failed"):
            run_pool(plan, ctx, store, runner=raising)
        status = {r["run_id"]: (r["status"], r["error"]) for r in store.runs()}
    for run in plan:
        state, error = status[run.run_id]
        if run.setting == "none":
            assert state == "done"
        elif run.phase == "intermediate":
            assert state == "failed" and error == "ValueError: bad line 3 in the victim's data"
        else:
            assert state == "failed" and error == f"its phase-2 run {run.parent} failed"


def test_a_killed_worker_is_recorded_and_the_next_invocation_finishes(tiny_model: Path, mini_data: Path,
                                                                     tmp_path: Path) -> None:
    ctx, plan = _experiment(tmp_path, tiny_model, mini_data, "kill")
    killing = functools.partial(failing_runner, victim="int-sick", kill=True)
    with Store(ctx.out_dir) as store:
        with pytest.raises(XstiltsError, match="worker process died"):
            run_pool(plan, ctx, store, runner=killing)
        runs = store.runs()
    status = {r["run_id"]: (r["status"], r["error"]) for r in runs}
    victim = next(r.run_id for r in plan if r.run_id.startswith("int-sick"))
    assert status[victim][0] == "failed" and "worker process died" in status[victim][1]
    assert not any(state == "running" for state, _ in status.values())  # nothing left claiming to run
    done_before = {run_id for run_id, (state, _) in status.items() if state == "done"}

    with Store(ctx.out_dir) as store:
        counts = run_pool(plan, ctx, store)
        assert all(r["status"] == "done" for r in store.runs())
    assert counts == {"done": len(plan) - len(done_before), "skipped": len(done_before)}


class _BreaksAfterTwo(ProcessPoolExecutor):
    """A pool whose third submit finds it broken: a worker died after the driver's last wait, while
    the other run in progress finished normally (the order CI met once on a busy machine)."""

    submitted = 0

    def submit(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        self.submitted += 1
        if self.submitted > 2:
            raise BrokenProcessPool("A child process terminated abruptly")
        return super().submit(*args, **kwargs)


def test_a_pool_found_broken_at_submit_stores_what_finished_and_starts_nothing(
        tiny_model: Path, mini_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, plan = _experiment(tmp_path, tiny_model, mini_data, "broken")
    monkeypatch.setattr(pool_module, "ProcessPoolExecutor", _BreaksAfterTwo)
    with Store(ctx.out_dir) as store:
        with pytest.raises(XstiltsError, match=r"worker process died.*3 run\(s\) not started"):
            run_pool(plan, ctx, store)
        status = [r["status"] for r in store.runs()]
    assert status.count("done") == 2 and status.count("pending") == 3  # the two submitted runs finished
    monkeypatch.undo()
    with Store(ctx.out_dir) as store:
        counts = run_pool(plan, ctx, store)
        assert all(r["status"] == "done" for r in store.runs())
    assert counts == {"done": 3, "skipped": 2}


def hanging_runner(run, ctx, parent, *, pids: Path):  # noqa: ANN001, ANN201
    """Writes its worker's pid, then waits: a run that is still going when Ctrl-C comes."""
    part = pids / f"{run.run_id}.part"
    part.write_text(str(os.getpid()), encoding="utf-8")
    part.rename(pids / run.run_id)
    time.sleep(300)
    raise AssertionError("an interrupted pool left its worker running")


def _alive(pid: int) -> bool:
    """Whether the process runs still (a zombie, killed and not yet reaped, does not)."""
    try:
        return _stat_fields(pid)[0] != "Z"  # the state field
    except FileNotFoundError:
        return False


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_ctrl_c_kills_every_worker_and_the_next_invocation_finishes(tiny_model: Path, mini_data: Path,
                                                                   tmp_path: Path) -> None:
    ctx, plan = _experiment(tmp_path, tiny_model, mini_data, "interrupt")
    pids = tmp_path / "pids"
    pids.mkdir()

    def interrupt_once_two_run() -> None:  # Ctrl-C as the driver sees it, once both workers are training
        deadline = time.monotonic() + 180
        while len([p for p in pids.iterdir() if not p.name.endswith(".part")]) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, _raise_interrupt)  # SIGINT may be ignored under xdist
    try:
        threading.Thread(target=interrupt_once_two_run, daemon=True).start()
        with Store(ctx.out_dir) as store, pytest.raises(KeyboardInterrupt):
            run_pool(plan, ctx, store, runner=functools.partial(hanging_runner, pids=pids))
    finally:
        signal.signal(signal.SIGUSR1, previous)
    workers = [int(p.read_text(encoding="utf-8")) for p in pids.iterdir()]
    assert len(workers) == 2 and os.getpid() not in workers
    deadline = time.monotonic() + 10
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_alive, workers))

    with Store(ctx.out_dir) as store:  # the interrupted runs were left 'running': they run again
        counts = run_pool(plan, ctx, store)
        assert all(r["status"] == "done" for r in store.runs())
    assert counts == {"done": len(plan), "skipped": 0}


def test_runs_with_the_largest_training_budget_start_first() -> None:
    """The quickstart's XNLI runs train on every pair (an unbounded budget), PAN-X's on 800 sentences:
    XNLI goes first, so the grid ends on short runs; equal budgets keep the plan's order."""
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "quickstart.toml")
    work = {(r.phase, r.target): expected_work(r, cfg) for r in make_plan(cfg)}
    assert work[("target", "xnli")] == float("inf")
    assert work[("target", "panx")] == 800 * 2 * 128
    assert work[("intermediate", None)] == 1000 * 2 * 96
    capped = cfg.model_copy(update={"target": cfg.target.model_copy(update={
        "train": cfg.target.train.model_copy(update={"max_steps": 10})})})
    panx = next(r for r in make_plan(cfg) if r.target == "panx")
    assert expected_work(panx, capped) == 10 * 32 * 128
