"""What every phase needs besides its run: the config, resolved paths, the tokenizer."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xstilts.config import ExperimentConfig
from xstilts.tasks import Task, get_task


@dataclass
class RunContext:
    cfg: ExperimentConfig
    out_dir: Path
    data_dir: Path
    model_path: str
    cache_dir: Path
    _tokenizer: Any = field(default=None, repr=False)

    @classmethod
    def create(cls, cfg: ExperimentConfig, out_dir: Path | None = None, model_path: str | None = None) -> RunContext:
        """Paths of a run; ``model_path`` already resolved (preflight checks it), else resolved here."""
        out = Path(out_dir) if out_dir else cfg.out_dir()
        data = Path(os.environ.get("XSTILTS_DATA", cfg.data_dir))
        cache = Path(cfg.runtime.cache_dir) if cfg.runtime.cache_dir else out / "cache"
        if model_path is None:
            from xstilts.models.loading import resolve_model_path

            model_path = resolve_model_path(cfg.model)
        return cls(cfg, out, data, model_path, cache)

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from xstilts.models.loading import load_tokenizer

            self._tokenizer = load_tokenizer(self.model_path)
        return self._tokenizer

    def target_task(self, name: str) -> Task:
        """Target task ``name`` with its ``[target.task_options]``, reading from the data directory."""
        return get_task(name, self.cfg.target.task_options.get(name), self.data_dir)

    def intermediate_task(self, name: str) -> Task:
        """Intermediate task ``name`` with its ``[intermediate.task_options]``, reading from the data directory."""
        return get_task(name, self.cfg.intermediate.task_options.get(name), self.data_dir)

    def checkpoint_dir(self, run_id: str) -> Path:
        return self.out_dir / "checkpoints" / run_id

    def predictions_dir(self, run_id: str) -> Path:
        """A run's predictions in XTREME's submission layout (``runtime.write_predictions``)."""
        return self.out_dir / "predictions" / run_id

    def labels_dir(self, run_id: str) -> Path:
        """The gold labels of exactly the examples ``predictions_dir`` holds predictions for."""
        return self.out_dir / "labels" / run_id
