"""Every reliability test starts with no fault armed and leaves torch's thread count as it was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from _reliability import write_experiment
from typer.testing import CliRunner

from xstilts import faults
from xstilts.cli import app


@pytest.fixture(autouse=True)
def _no_fault_armed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(faults.ENV, raising=False)
    faults.reset()


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    """In-process CLI runs set ``runtime.threads = 1``; later tests get their thread count back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def finished_study(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, mini_data: Path) -> Path:
    """A finished small study (phase 2 on SICK, XNLI on top): tests copy it, never change it."""
    root = tmp_path_factory.mktemp("finished")
    out = root / "exp"
    config = write_experiment(
        root / "exp.toml", tiny_model, mini_data, out, settings='["sick"]', tasks='["xnli"]', languages='["en"]'
    )
    n = torch.get_num_threads()
    result = CliRunner().invoke(app, ["run", str(config)])
    torch.set_num_threads(n)
    assert result.exit_code == 0, result.output
    return out
