"""One small real experiment for the export tests: trained once per session, every test reads it.

The tiny model learns PAN-X (real data from the shared folder) and XNLI for a few steps after a
SICK phase-2 run, keeping its phase-3 checkpoints; a second experiment keeps none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from _experiment import experiment_toml
from typer.testing import CliRunner

from xstilts.cli import app
from xstilts.store import Store

TRAIN = """lr = 5e-4
batch_size = 8
max_steps = 6
eval_every = 3
max_length = 64
max_train_examples = 48
max_eval_examples = 40
"""


@dataclass(frozen=True)
class Trained:
    expdir: Path
    runs: dict[str, str]  # "panx" / "xnli" (phase-3 runs), "sick" (phase 2) -> run id
    no_checkpoint: tuple[Path, str]  # an experiment and its phase-3 run that kept no checkpoint
    model: Path


def _run(config: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, tiny_model: Path) -> Trained:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors on a shared machine
    root = tmp_path_factory.mktemp("export")
    config = root / "kept.toml"
    config.write_text(experiment_toml(tiny_model, shared_data, root / "kept", settings=["sick"], languages=["en", "de"],
                                      train=TRAIN, runtime="progress = false\nsave_target_checkpoints = true\n"),
                      encoding="utf-8")
    _run(config)
    bare = root / "bare.toml"
    bare.write_text(experiment_toml(tiny_model, shared_data, root / "bare", settings=["none"], tasks=["xnli"],
                                    languages=["en"], train=TRAIN), encoding="utf-8")
    _run(bare)
    torch.set_num_threads(threads)
    with Store(root / "kept", readonly=True) as store:
        runs = {r["target"] or r["intermediate"]: r["run_id"] for r in store.runs()}
    with Store(root / "bare", readonly=True) as store:
        (bare_run,) = [r["run_id"] for r in store.runs()]
    return Trained(root / "kept", runs, (root / "bare", bare_run), tiny_model)
