"""Live tracking of a run through Accelerate's trackers (``[runtime] log_with``).

Why: the store is written when a run finishes; while a grid runs, TensorBoard (or Weights &
Biases, or MLflow) shows each run's curves as they happen. One xstilts run is one tracker run,
named by its run id and grouped by experiment:

* ``tensorboard``: event files under ``EXPDIR/tensorboard/{run_id}/`` (``tensorboard --logdir
  EXPDIR/tensorboard`` shows the experiment's runs side by side);
* ``wandb``: project = experiment name, run name = run id, group = the run's setting (and target),
  so its seeds sit together;
* ``mlflow``: experiment = experiment name, run name = run id (the tracking URI comes from
  ``MLFLOW_TRACKING_URI`` as usual).

Logged: per optimizer step ``train/loss`` (the mean over the update's micro-batches, MLM loss
included when mixed in), ``train/lr`` (the learning rate the step used) and
``train/tokens_per_s`` (real, non-padding tokens per second of that step); per evaluation every
stored score as ``eval/{task}/{lang}/{metric}`` (exactly the value the store keeps for that step:
for phase 3's English, the report half). Tracking only observes: it is not part of run ids and
draws no random numbers. Trackers are finished one by one, not with ``Accelerator.end_training``,
which would also destroy the process group that later runs of a DDP grid still need.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from accelerate import Accelerator

#: The directory under the experiment directory that holds one TensorBoard folder per run.
TENSORBOARD_DIR = "tensorboard"


def _hparam(value: Any) -> int | float | str | bool:
    """A value TensorBoard's hparams (and every tracker's config) accepts: scalars as they are, else text."""
    return value if isinstance(value, int | float | str | bool) else str(value)


class RunTracker:
    """The tracker run of one xstilts run: built before training, started on the loop's Accelerator."""

    def __init__(self, names: list[str], run_id: str, experiment: str, out_dir: Path, group: str,
                 config: Mapping[str, Any]):
        self.names = list(names)
        self.run_id = run_id
        self.experiment = experiment
        self.project_dir = Path(out_dir) / TENSORBOARD_DIR
        self.group = group
        self.config = {k: _hparam(v) for k, v in config.items()}
        self.accelerator: Accelerator | None = None

    def accelerator_kwargs(self) -> dict[str, Any]:
        """``log_with`` and ``project_dir`` for the Accelerator the run trains with."""
        log_with: list[Any] = []
        for name in self.names:
            if name == "tensorboard":
                log_with.append("tensorboard")  # named: Accelerate puts it under project_dir/run_id
            elif name == "wandb":
                from accelerate.tracking import WandBTracker

                log_with.append(WandBTracker(self.experiment, name=self.run_id, group=self.group))
            elif name == "mlflow":
                from accelerate.tracking import MLflowTracker

                log_with.append(MLflowTracker(experiment_name=self.experiment, run_name=self.run_id,
                                              tags={"group": self.group}))
            else:
                raise ValueError(f"unknown tracker {name!r}")
        return {"log_with": log_with, "project_dir": str(self.project_dir)}

    def start(self, accelerator: Accelerator) -> None:
        """Open the tracker run; a TensorBoard folder left by an interrupted attempt of this run is emptied first."""
        self.accelerator = accelerator
        if "tensorboard" in self.names and accelerator.is_main_process:
            old = self.project_dir / self.run_id
            for f in old.glob("events.out.tfevents.*") if old.is_dir() else ():
                f.unlink()  # the run starts again from step 1: its old curve would overlap the new one
        accelerator.init_trackers(self.run_id, config=self.config)

    def log(self, values: Mapping[str, float], step: int) -> None:
        if self.accelerator is not None:
            self.accelerator.log(dict(values), step=step)

    def log_step(self, step: int, loss: float, lr: float, tokens_per_s: float) -> None:
        self.log({"train/loss": loss, "train/lr": lr, "train/tokens_per_s": tokens_per_s}, step)

    def log_scores(self, step: int, scores: Mapping[tuple[str, str, str], float]) -> None:
        """``scores``: (task, language, metric) -> value, logged as ``eval/{task}/{lang}/{metric}``."""
        self.log({f"eval/{task}/{lang}/{metric}": float(v) for (task, lang, metric), v in scores.items()}, step)

    def __enter__(self) -> RunTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def finish(self) -> None:
        """Close every tracker (flushes TensorBoard's event files) and forget them."""
        if self.accelerator is None:
            return
        for tracker in self.accelerator.trackers:
            tracker.finish()
        self.accelerator.trackers = []
        self.accelerator = None


def run_tracker(log_with: list[str], run_id: str, experiment: str, out_dir: Path, group: str,
                config: Mapping[str, Any]) -> RunTracker | None:
    """The run's tracker, or None when ``log_with`` is empty (the default: nothing is imported or written)."""
    return RunTracker(log_with, run_id, experiment, out_dir, group, config) if log_with else None
