"""Every reliability test starts with no fault armed and leaves torch's thread count as it was."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from xstilts import faults


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
