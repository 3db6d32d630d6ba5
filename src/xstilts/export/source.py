"""What an export starts from: one finished run of a results store, its config and its checkpoint.

Why a module of its own: every way a run cannot be exported (no store, unknown run, unfinished,
no checkpoint kept) is decided here, before anything is loaded, each as one line that says what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xstilts.checkpoint import ENCODER_FILE
from xstilts.config import ExperimentConfig
from xstilts.errors import XstiltsError
from xstilts.store import Store


@dataclass(frozen=True)
class StoredRun:
    """A finished run: its store row, the experiment config it ran under, its final scores."""

    expdir: Path
    row: dict[str, Any]
    config: ExperimentConfig
    scores: list[dict[str, Any]]
    checkpoint: Path

    @property
    def run_id(self) -> str:
        return self.row["run_id"]

    @property
    def is_target(self) -> bool:
        """A phase-3 run (encoder + trained head); else a phase-2 run (encoder only)."""
        return self.row["phase"] == "target"


def stored_run(expdir: Path, run_id: str) -> StoredRun:
    """The run ``run_id`` of the experiment in ``expdir``, checked to be exportable."""
    path = Path(expdir) / Store.FILENAME
    if not path.is_file():
        raise XstiltsError("no results store here (run `xstilts run` first)", path)
    if any(c in run_id for c in "*?["):
        raise XstiltsError(f"export takes one run id, not a pattern: {run_id!r}", path)
    with Store(expdir, readonly=True) as store:
        store.match_runs([run_id])  # an unknown id: one line naming the closest known one
        row = store.run(run_id)
        assert row is not None
        stored_config = store.get_meta("config")
        scores = store.run_scores(run_id)
    if row["status"] != "done":
        raise XstiltsError(f"run {run_id} is {row['status']}, not done: finish it with `xstilts run CONFIG` first",
                           path)
    if stored_config is None:
        raise XstiltsError("the store does not record its config (an older xstilts); cannot describe the model",
                           path)
    config = ExperimentConfig.model_validate(stored_config)
    if not row["checkpoint"]:
        raise XstiltsError(f"run {run_id} kept no checkpoint: set `[runtime] save_target_checkpoints = true` in the "
                           f"config, forget the run (`xstilts forget {expdir} {run_id}`) and re-run", path)
    checkpoint = Path(row["checkpoint"])
    if not (checkpoint / ENCODER_FILE).is_file():
        raise XstiltsError(f"checkpoint of run {run_id} is missing (moved, deleted, or on a remote shared_dir: "
                           "copy it here)", checkpoint / ENCODER_FILE)
    return StoredRun(Path(expdir), row, config, scores, checkpoint)
