"""The evaluation tests' shared set-up: the tiny experiment's context and a fresh model for a task."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from xstilts.config import load_config
from xstilts.context import RunContext
from xstilts.heads import get_head_kind
from xstilts.models.loading import load_encoder
from xstilts.tasks import get_task


@pytest.fixture()
def ctx(tiny_config: Path) -> RunContext:
    return RunContext.create(load_config(tiny_config))


@pytest.fixture()
def fresh_model(ctx: RunContext) -> Callable[[str], tuple[Any, Any, Any, Any]]:
    """``build(task_name)`` → (task, kind, encoder, head): the tiny encoder and a new head, seed 0."""

    def build(task_name: str) -> tuple[Any, Any, Any, Any]:
        task = get_task(task_name, data_dir=ctx.data_dir)
        kind = get_head_kind(task.head)
        torch.manual_seed(0)
        encoder = load_encoder(ctx.model_path)
        return task, kind, encoder, kind.build(task, encoder.config.hidden_size, 0.1)

    return build
