"""The shipped configs load, validate and plan to the grids their comments promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from xstilts.config import load_config
from xstilts.plan import make_plan

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_every_config_loads_and_plans(path: Path) -> None:
    plan = make_plan(load_config(path))
    assert plan and all(r.phase in ("intermediate", "target") for r in plan)


def test_quickstart_is_the_issue_grid() -> None:
    cfg = load_config(CONFIGS / "quickstart.toml")
    plan = make_plan(cfg)
    assert cfg.model == "default" and list(cfg.seeds) == [1, 2]
    assert len(plan) == 10 and sum(r.phase == "intermediate" for r in plan) == 2
    targets = [r for r in plan if r.phase == "target"]
    assert {r.target for r in targets} == {"panx", "xnli"}
    for r in targets:
        assert {"en", "de", "es", "ru", "zh", "ar", "hi", "sw"} <= set(r.languages)


def test_study_is_seven_settings_three_seeds() -> None:
    plan = make_plan(load_config(CONFIGS / "study.toml"))
    assert len(plan) == 60
    assert len({r.setting for r in plan}) == 7 and {r.seed for r in plan} == {1, 2, 3}
