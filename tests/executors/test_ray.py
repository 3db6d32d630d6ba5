"""The Ray executor on a local Ray instance, against the local executor, on the tiny model.

A 2-setting × 2-target × 2-seed grid (2 phase-2 runs, 8 target runs) must fill the store with
exactly what the local executor writes (CPU with one thread per run is deterministic); a
re-submission skips everything; a target whose phase-2 run finished in an earlier submission
starts from the checkpoint in the shared directory. A worker killed (SIGKILL) on its first
attempt of a phase-2 run is retried and the experiment completes; with retries off the same
kill fails that run and its targets, while every other run is still stored.
"""

from __future__ import annotations

import functools
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

ray = pytest.importorskip("ray")

from _grid import grid_config, run_local_then, snapshot  # noqa: E402

from xstilts.cli import app  # noqa: E402
from xstilts.config import load_config  # noqa: E402
from xstilts.context import RunContext  # noqa: E402
from xstilts.errors import XstiltsError  # noqa: E402
from xstilts.executors import get_executor  # noqa: E402
from xstilts.executors.local import execute_run, run_local  # noqa: E402
from xstilts.executors.ray import run_ray  # noqa: E402
from xstilts.plan import make_plan  # noqa: E402
from xstilts.store import Store  # noqa: E402


@pytest.fixture(scope="module")
def ray_instance():
    import torch

    threads = torch.get_num_threads()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2, log_to_driver=False)
    # the crash runner below lives in this test module, which Ray workers cannot import: ship it by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()
    torch.set_num_threads(threads)  # the CLI set one thread for determinism


def test_ray_store_equals_local_store(ray_instance: None, tiny_model: Path, mini_data: Path,
                                      tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    shared = f"file://{tmp_path / 'shared'}"
    local_cfg = grid_config(tmp_path / "local.toml", tiny_model, mini_data, tmp_path / "local", cache, [1, 2])
    ray_cfg = grid_config(tmp_path / "ray.toml", tiny_model, mini_data, tmp_path / "ray", cache, [1, 2],
                          f'executor = "ray"\n[ray]\ncpus_per_run = 1\nmax_retries = 1\n'
                          f'shared_dir = "{shared}"\n')
    assert get_executor(load_config(local_cfg)) is run_local
    assert get_executor(load_config(ray_cfg)) is run_ray

    said = run_local_then(local_cfg, ray_cfg)
    assert "(ray executor)" in said and "10 run(s) done now, 0 already done" in said

    local, distributed = snapshot(tmp_path / "local"), snapshot(tmp_path / "ray")
    assert len(local["runs"]) == 10 and all(r[1] == "done" for r in local["runs"])
    assert len(local["scores"]) > 50 and len(local["stats"]) >= 2 + 8 * 3  # every language of every run
    assert distributed == local  # same runs, same scores to the last bit, same per-example rows

    # phase-2 checkpoints went to the shared directory, named by the URL the store keeps
    with Store(tmp_path / "ray", readonly=True) as store:
        phase2 = [r for r in store.runs() if r["phase"] == "intermediate"]
        assert {r["checkpoint"] for r in phase2} == {f"{shared}/{r['run_id']}" for r in phase2}
    for r in phase2:
        assert (tmp_path / "shared" / r["run_id"] / "encoder.safetensors").is_file()

    # re-submitting skips every finished run, as locally
    runner = CliRunner()
    again = runner.invoke(app, ["run", str(ray_cfg)])
    assert again.exit_code == 0, again.output
    assert "0 run(s) done now, 10 already done" in again.output

    # a target whose parent finished earlier starts from the parent's checkpoint in the shared dir
    victim = next(r[0] for r in local["runs"] if r[0].startswith("tgt-sick-xnli-s2"))
    conn = sqlite3.connect(tmp_path / "ray" / "results.sqlite")
    with conn:
        conn.execute("UPDATE runs SET status='failed' WHERE run_id=?", (victim,))
        conn.execute("DELETE FROM scores WHERE run_id=?", (victim,))
        conn.execute("DELETE FROM example_stats WHERE run_id=?", (victim,))
    conn.close()
    redo = runner.invoke(app, ["run", str(ray_cfg)])
    assert redo.exit_code == 0, redo.output
    assert "1 run(s) done now, 9 already done" in redo.output
    assert snapshot(tmp_path / "ray") == local


def crash_first_attempt(run, ctx, parent, *, victim: str, marker: str):  # noqa: ANN001, ANN201
    """A runner whose worker process is SIGKILLed in the middle of its first attempt of the victim run:
    after training, just as the phase-2 checkpoint is about to be written."""
    if run.run_id.startswith(victim) and not os.path.exists(marker):
        import xstilts.phases.intermediate as phase

        def die(*args: object, **kwargs: object) -> None:
            Path(marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)

        phase.save_encoder = die  # only in this worker process, which is about to disappear
    return execute_run(run, ctx, parent)


def _register(store: Store, plan: list) -> None:
    for r in plan:
        store.register_run(r.run_id, r.phase, r.setting, r.target, r.seed, r.config_hash, r.parent)
    store.set_meta("plan", [r.run_id for r in plan])


def test_killed_worker_is_retried(ray_instance: None, tiny_model: Path, mini_data: Path,
                                  tmp_path: Path) -> None:
    def experiment(retries: int) -> tuple[RunContext, list]:
        path = grid_config(tmp_path / f"crash{retries}.toml", tiny_model, mini_data, tmp_path / "exp",
                           tmp_path / "cache", [1],
                           f'executor = "ray"\n[ray]\nmax_retries = {retries}\n'
                           f'shared_dir = "{tmp_path / "shared"}"\n')
        cfg = load_config(path)
        return RunContext.create(cfg), make_plan(cfg)

    # without retries the kill fails the phase-2 run and its targets; the baseline runs are stored
    ctx, plan = experiment(0)
    crash = functools.partial(crash_first_attempt, victim="int-sick", marker=str(tmp_path / "killed-0"))
    with Store(ctx.out_dir) as store:
        _register(store, plan)
        with pytest.raises(XstiltsError, match="3 run\\(s\\) failed"):
            run_ray(plan, ctx, store, runner=crash)
        status = {r["run_id"]: (r["status"], r["error"]) for r in store.runs()}
    assert (tmp_path / "killed-0").is_file()
    for run in plan:
        state, error = status[run.run_id]
        if run.setting == "none":
            assert state == "done"
        elif run.phase == "intermediate":
            assert state == "failed" and ("died" in error.lower() or "crash" in error.lower()), error
        else:
            assert state == "failed" and error == f"its phase-2 run {run.parent} failed"

    # with one retry the same kill is survived: the run is re-executed and the experiment completes
    ctx, plan = experiment(1)
    crash = functools.partial(crash_first_attempt, victim="int-sick", marker=str(tmp_path / "killed-1"))
    with Store(ctx.out_dir) as store:
        counts = run_ray(plan, ctx, store, runner=crash)
        runs = store.runs()
        final = store.scores_frame(kind="final")
    assert (tmp_path / "killed-1").is_file()  # the first attempt really was killed
    assert int((tmp_path / "killed-1").read_text()) != os.getpid()
    assert counts == {"done": 3, "skipped": 2}
    assert all(r["status"] == "done" for r in runs)
    targets = final[(final["phase"] == "target") & (final["intermediate"] == "sick")]
    assert set(targets["language"]) == {"en", "de", "sw"} and set(targets["target"]) == {"panx", "xnli"}
