"""Fixture data in the distributed formats, and a short phase-2 run on the tiny model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _task_helpers import FIXTURE_DATA, PHASE2_TRAIN

from xstilts.config import ExperimentConfig
from xstilts.context import RunContext
from xstilts.store import RunResult


@pytest.fixture(scope="session")
def fixture_data() -> Path:
    return FIXTURE_DATA


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture()
def phase2(tmp_path: Path, tiny_model: Path, tiny_tokenizer: Any) -> Callable[..., RunResult]:
    """Run phase 2 of one setting for a few steps on fixture data; returns its result."""
    from xstilts.phases.intermediate import run_intermediate
    from xstilts.plan import make_plan

    def run(setting: str | list[str], data_dir: Path = FIXTURE_DATA, **intermediate: Any) -> RunResult:
        cfg = ExperimentConfig.model_validate({
            "name": "phase2", "model": str(tiny_model), "data_dir": str(data_dir),
            "output_dir": str(tmp_path / "exp"), "seeds": [1],
            "intermediate": {"settings": [setting], "train": dict(PHASE2_TRAIN), **intermediate},
            "target": {"tasks": ["xnli"]}, "runtime": {"progress": False},
        })
        ctx = RunContext.create(cfg, tmp_path / "exp")
        ctx._tokenizer = tiny_tokenizer  # loading the tokenizer once per session saves seconds per run
        (p2,) = [r for r in make_plan(cfg) if r.phase == "intermediate"]
        return run_intermediate(p2, ctx)

    return run
