"""SIGKILL a real ``xstilts run`` again and again; resuming must end with exactly the store of a
run that was never interrupted.

The kills are the harshest crash there is (no ``finally``, no ``atexit``, no flush). Five land at
named points through ``XSTILTS_FAULT`` (mid cache write, mid training, inside the store commit,
mid evaluation, mid checkpoint write), so every dangerous moment is hit every time; two more land
after a seeded random delay, wherever that is. After each kill the store must be intact and
hold results only for finished runs; at the end, the same runs with the same scores to the last
bit as an uninterrupted run of the same config beside it, and no temporary file left behind.
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from _reliability import (
    cli_command,
    cli_env,
    run_cli,
    run_status,
    stale_temp_files,
    store_invariants,
    store_snapshot,
    write_experiment,
)

KILLED = -signal.SIGKILL
RUNNING = re.compile(r"^\[\d+/\d+\] \S+: running$")

# plan order of the experiment: tgt-none-panx, tgt-none-xnli, int-sick, tgt-sick-panx, tgt-sick-xnli;
# every run evaluates at steps 2 and 4, each target on 3 languages in one pass (runtime.eval_one_pass):
# 2 evaluate_many() calls a run
NAMED_KILLS = [
    "cache_write:2",  # run 1: tokenised cache of panx eval-en written to its temp file, not renamed
    "train_step:3",  # run 1: after the 3rd optimizer update
    "store_commit:1",  # run 1: every result row inserted, transaction not committed
    "evaluate:4",  # run 2 (run 1 finishes): its second evaluation
    "checkpoint_write:1",  # run 3 (phase 2): checkpoint written to its temp file, not renamed
]
RANDOM_KILLS = 2


def _kill_after_random_delay(config: Path, rng: random.Random) -> tuple[int, float, str]:
    """Start a run; once it starts real work on a run, SIGKILL it after a seeded delay."""
    proc = subprocess.Popen(cli_command(config), env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    started, lines = threading.Event(), []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if RUNNING.match(lines[-1]):
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    delay = rng.uniform(0.3, 2.5)
    if started.wait(timeout=300):
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    rc = proc.wait(timeout=300)
    reader.join(timeout=10)
    return rc, delay, "\n".join(lines)


def test_sigkill_anywhere_then_resume_equals_uninterrupted_run(
        tiny_model: Path, mini_data: Path, tmp_path: Path) -> None:
    crash_out, ref_out = tmp_path / "crashed", tmp_path / "reference"
    crash_cfg = write_experiment(tmp_path / "crash.toml", tiny_model, mini_data, crash_out)
    ref_cfg = write_experiment(tmp_path / "ref.toml", tiny_model, mini_data, ref_out)
    # the uninterrupted run goes on beside the crashes (one thread each: two cores)
    reference = subprocess.Popen(cli_command(ref_cfg), env=cli_env(), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)

    # -- five kills at named points, each checked for what it must (not) have left behind --------
    for fault in NAMED_KILLS:
        proc = run_cli(crash_cfg, fault=fault)
        assert proc.returncode == KILLED, f"{fault} was never reached:\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr
        store_invariants(crash_out)
        status = run_status(crash_out)
        runs = list(status)  # registration order = plan order
        if fault.startswith("cache_write"):
            cache = crash_out / "cache"
            assert len(list(cache.glob("*.pkl"))) == 1  # the entry written before the kill
            assert len(stale_temp_files(cache)) == 1  # the one it died writing: never renamed
            assert set(status.values()) == {"running", "pending"}
        elif fault.startswith(("train_step", "store_commit")):
            assert status[runs[0]] == "running"  # the commit was rolled back as a whole
            assert "done" not in status.values()
        elif fault.startswith("evaluate"):
            assert status[runs[0]] == "done" and status[runs[1]] == "running"
        elif fault.startswith("checkpoint_write"):
            phase2 = next(r for r in runs if r.startswith("int-"))
            assert status[phase2] == "running"
            ckpt_dir = crash_out / "checkpoints" / phase2
            assert not (ckpt_dir / "encoder.safetensors").exists()
            assert len(stale_temp_files(ckpt_dir)) == 1  # died between write and rename

    # -- kills at seeded random moments (tolerated if the run got to finish first) ----------------
    rng = random.Random(20240611)
    random_kills = 0
    for _ in range(RANDOM_KILLS):
        rc, delay, err = _kill_after_random_delay(crash_cfg, rng)
        assert rc in (KILLED, 0), err[-3000:]
        assert "Traceback" not in err
        store_invariants(crash_out)
        random_kills += rc == KILLED
        print(f"random kill after {delay:.2f}s: {'landed' if rc == KILLED else 'run had finished'}")

    # -- resume to the end -------------------------------------------------------------------------
    final = run_cli(crash_cfg)
    assert final.returncode == 0, final.stderr[-3000:]
    assert reference.wait(timeout=300) == 0, reference.stderr.read()[-3000:] if reference.stderr else ""
    if reference.stderr:
        reference.stderr.close()

    crashed, uninterrupted = store_snapshot(crash_out), store_snapshot(ref_out)
    assert len(crashed["runs"]) == 5 and all(r[7] == "done" for r in crashed["runs"])
    assert crashed["runs"] == uninterrupted["runs"]
    assert crashed["scores"] == uninterrupted["scores"]  # floats compared exactly
    assert crashed["example_stats"] == uninterrupted["example_stats"]
    assert crashed["checkpoints"] == uninterrupted["checkpoints"]  # phase-2 weights, byte for byte
    assert (crash_out / "results.csv").read_bytes() == (ref_out / "results.csv").read_bytes()
    assert stale_temp_files(crash_out) == []  # every killed writer's temp file was swept
    kills = len(NAMED_KILLS) + random_kills
    assert kills >= 5
    print(f"{kills} SIGKILLs survived ({random_kills} of {RANDOM_KILLS} random ones landed); store identical")
