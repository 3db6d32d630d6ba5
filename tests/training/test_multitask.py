"""Multi-task phase 2: tasks are drawn at the configured rates, the config reaches the loop, the
``all-nine`` alias and explicit lists train, caps apply, and run ids follow the settings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _experiment import TINY_TRAIN_OPTIONS
from torch import nn

from xstilts.config import MULTI_TASK_ALIASES, ExperimentConfig, RuntimeConfig, TrainConfig
from xstilts.context import RunContext
from xstilts.heads.base import Evaluation, Feature, HeadKind
from xstilts.plan import make_plan
from xstilts.store import RunResult
from xstilts.training.loop import Job, sampling_probs, train

FIXTURE_DATA = Path(__file__).resolve().parents[1] / "fixtures" / "data"


class CountingKind(HeadKind):
    """A trivial head kind whose loss counts the batches each job receives."""

    kind = "counting"

    def __init__(self, name: str, counts: Counter):
        self.name, self.counts = name, counts

    def build(self, task: Any, hidden_size: int) -> nn.Module:
        raise NotImplementedError

    def encode(self, task: Any, examples: Sequence[Any], tokenizer: Any, max_length: int) -> list[Feature]:
        raise NotImplementedError

    def collate(self, features: Sequence[Feature], pad_id: int) -> dict[str, torch.Tensor]:
        ids = torch.tensor([f["input_ids"] for f in features], dtype=torch.float32)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids, dtype=torch.long)}

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        self.counts[self.name] += 1
        return (logits ** 2).mean()

    def evaluate(self, task: Any, examples: Sequence[Any], features: Sequence[Feature],
                 outputs: Sequence[np.ndarray]) -> Evaluation:
        raise NotImplementedError


class TinyHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(1, 1)

    def forward(self, encoder: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.lin(encoder(batch["input_ids"]))


@pytest.mark.parametrize(("sampler", "temperature"), [("proportional", 1.0), ("temperature", 2.0),
                                                      ("uniform", 1.0)])
def test_loop_draws_tasks_at_the_configured_rates(sampler: str, temperature: float) -> None:
    sizes = {"big": 60, "small": 20, "tiny": 5}
    counts: Counter = Counter()
    jobs = [Job(name, CountingKind(name, counts), TinyHead(), [{"input_ids": [float(i)], "length": 1}
                                                                   for i in range(n)])
            for name, n in sizes.items()]
    steps = 1500
    hp = TrainConfig(lr=1e-3, batch_size=4, max_steps=steps, eval_every=steps)
    train(nn.Linear(1, 1), jobs, hp, RuntimeConfig(progress=False), seed=5, pad_id=0,
          evaluate=lambda step: 0.0, sampler=sampler, temperature=temperature)
    expected = sampling_probs(list(sizes.values()), sampler, temperature)
    observed = np.array([counts[name] for name in sizes]) / steps
    assert sum(counts.values()) == steps
    np.testing.assert_allclose(observed, expected, atol=0.04)
    if sampler == "temperature":  # flatter than proportional, steeper than uniform
        assert observed[0] < 60 / 85 - 0.1 and observed[2] > 5 / 85 + 0.05


def _config(tmp_path: Path, model: Path, setting: Any, train: dict | None = None, **intermediate: Any,
            ) -> ExperimentConfig:
    hp = {**TINY_TRAIN_OPTIONS, "max_length": 48, **(train or {})}
    return ExperimentConfig.model_validate({
        "name": "mt", "model": str(model), "data_dir": str(FIXTURE_DATA), "output_dir": str(tmp_path / "exp"),
        "seeds": [1], "intermediate": {"settings": [setting], "train": hp, **intermediate},
        "target": {"tasks": ["xnli"]}, "runtime": {"progress": False},
    })


def _phase2(cfg: ExperimentConfig, tmp_path: Path, tokenizer: Any) -> RunResult:
    from xstilts.phases.intermediate import run_intermediate

    ctx = RunContext.create(cfg, tmp_path / "exp")
    ctx._tokenizer = tokenizer
    (run,) = [r for r in make_plan(cfg) if r.phase == "intermediate"]
    return run_intermediate(run, ctx)


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture()
def spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Records what phase 2 hands to the training loop."""
    import xstilts.phases.intermediate as phase

    seen: dict[str, Any] = {}
    real = phase.train

    def wrapper(encoder, jobs, *args, **kwargs):
        seen["jobs"] = {j.name: len(j.features) for j in jobs}
        seen["sampler"], seen["temperature"] = kwargs.get("sampler"), kwargs.get("temperature")
        return real(encoder, jobs, *args, **kwargs)

    monkeypatch.setattr(phase, "train", wrapper)
    return seen


@pytest.mark.filterwarnings("ignore:.*malformed row")
def test_all_nine_alias_trains_every_task(tmp_path: Path, tiny_model: Path, tokenizer: Any,
                                          spy: dict) -> None:
    cfg = _config(tmp_path, tiny_model, "all-nine", train={"max_steps": 9, "eval_every": 9},
                  sampler="uniform")
    result = _phase2(cfg, tmp_path, tokenizer)
    nine = MULTI_TASK_ALIASES["all-nine"]
    assert set(spy["jobs"]) == set(nine) and spy["sampler"] == "uniform"
    final = {(s.task, s.metric) for s in result.scores if s.kind == "final"}
    assert {task for task, _ in final} == set(nine)
    assert ("squad", "squad_f1") in final and ("ccg", "token_accuracy") in final
    assert result.train_steps == 9


def test_explicit_list_with_caps_and_temperature(tmp_path: Path, tiny_model: Path, tokenizer: Any,
                                                 spy: dict) -> None:
    cfg = _config(tmp_path, tiny_model, ["sst2", "commonsenseqa"], sampler="temperature", temperature=3.0,
                  task_caps={"sst2": 5})
    result = _phase2(cfg, tmp_path, tokenizer)
    assert spy["jobs"] == {"sst2": 5, "commonsenseqa": 6}  # sst2 capped; csqa keeps max_train_examples
    assert (spy["sampler"], spy["temperature"]) == ("temperature", 3.0)
    assert {s.task for s in result.scores if s.kind == "final"} == {"sst2", "commonsenseqa"}


def test_run_ids_follow_the_phase2_settings(tmp_path: Path) -> None:
    def ids(**intermediate: Any) -> dict[str, str]:
        cfg = ExperimentConfig.model_validate({
            "name": "ids", "target": {"tasks": ["xnli"]},
            "intermediate": {"settings": ["sst2", ["sst2", "squad"]], **intermediate}})
        return {r.setting: r.run_id for r in make_plan(cfg) if r.phase == "intermediate"}

    base = ids()
    assert ids(sampler="proportional", temperature=1.0, task_caps={}, mlm_rate=0.0) == base
    uniform = ids(sampler="uniform")
    assert uniform["sst2"] == base["sst2"] and uniform["sst2+squad"] != base["sst2+squad"]
    assert ids(sampler="temperature", temperature=2.0)["sst2+squad"] != ids(sampler="temperature",
                                                                           temperature=5.0)["sst2+squad"]
    capped = ids(task_caps={"squad": 10})
    assert capped["sst2"] == base["sst2"] and capped["sst2+squad"] != base["sst2+squad"]
    mlm = ids(mlm_rate=0.5, mlm_data="xtreme:tatoeba")
    assert mlm["sst2"] != base["sst2"]
