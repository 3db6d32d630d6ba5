"""The local executor as one data-parallel job: ``torchrun`` (what ``accelerate launch --multi_gpu``
runs underneath) with 2 CPU processes on gloo, ``ACCELERATE_USE_CPU`` as ``accelerate launch --cpu``
sets it. Both processes train every run together; only rank 0 writes the store and checkpoints.
Checkpoint averaging is on, so the weight average is also taken through Accelerate's DDP wrapper.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _experiment import experiment_toml

from xstilts.store import Store


def test_torchrun_two_processes_one_writer(tiny_model: Path, mini_data: Path, tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        torchrun = Path(shutil.which("torchrun") or "")
    if not torchrun.is_file():
        pytest.fail("torchrun (part of torch) not found beside the Python interpreter")
    config = tmp_path / "ddp.toml"
    config.write_text(experiment_toml(tiny_model, mini_data, tmp_path / "exp", name="ddp", settings=["sick"],
                                      intermediate_extra="grad_accum_steps = 2\n", tasks=["xnli"],
                                      languages=["en", "de"], runtime="threads = 1\nprogress = false\n",
                                      extra='[target.selection]\naverage = "all"\n'),
                      encoding="utf-8")
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "xstilts.cli", "run",
                           str(config)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("experiment ddp:") == 1  # rank 1 is silent
    assert "finished: 2 run(s) done now" in proc.stderr
    with Store(tmp_path / "exp", readonly=True) as store:
        runs = store.runs()
        assert [r["status"] for r in runs] == ["done", "done"]
        # two independent processes would each have marked every run running: attempts would be 2
        assert [r["attempts"] for r in runs] == [1, 1]
        assert [r["train_steps"] for r in runs] == [4, 4]
        final = store.scores_frame(kind="final")
        assert sorted(final[final["phase"] == "target"]["language"]) == ["de", "en"]  # no duplicate rows
        # the averaged model (steps 2 and 4, unwrapped from DDP) is evaluated once, on every language
        average = store.scores_frame(kind="average-all")
        assert sorted(average["language"]) == ["de", "en"]
        assert set(average["step"]) == {4} and average["value"].notna().all()
        target_run = next(r for r in runs if r["phase"] == "target")
        assert '"steps": [2, 4]' in target_run["extra"]
        checkpoint = Path(next(r["checkpoint"] for r in runs if r["phase"] == "intermediate"))
    assert sorted(p.name for p in checkpoint.iterdir()) == ["encoder.safetensors"]  # no temp files left
