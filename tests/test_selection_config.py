"""``[target.selection]``: defaults leave training (and run ids) alone; naming averaging switches it on."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from xstilts.config import SelectionConfig, TargetConfig
from xstilts.plan import average_key


def test_defaults_do_not_average_and_add_nothing_to_run_ids() -> None:
    sel = TargetConfig(tasks=["xnli"]).selection
    assert sel.strategies == ["english", "k-shot", "oracle"] and sel.average is None
    assert sel.k_shot == [10, 50, 100] and average_key(sel) is None


def test_averaging_is_switched_on_by_either_key() -> None:
    by_strategy = SelectionConfig(strategies=["english", "average"])
    assert by_strategy.average == "all" and average_key(by_strategy) == {"average": "all"}
    by_mode = SelectionConfig(average="last-k", average_k=2, k_shot=[50, 10, 50])
    assert "average" in by_mode.strategies and by_mode.k_shot == [10, 50]
    assert average_key(by_mode) == {"average": "last-k", "k": 2}


@pytest.mark.parametrize("bad", [{"average": "median"}, {"k_shot": [0]}, {"average_k": 0},
                                 {"strategies": ["dev"]}, {"strategies": []}])
def test_bad_values_are_rejected(bad: dict) -> None:
    with pytest.raises(ValidationError):
        SelectionConfig(**bad)
