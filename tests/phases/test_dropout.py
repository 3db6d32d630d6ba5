"""``train.dropout`` is real: it sets the encoder's hidden and attention dropout and the head's."""

from __future__ import annotations

from pathlib import Path

import pytest
from _experiment import experiment_toml

from xstilts.config import TrainConfig, load_config
from xstilts.context import RunContext
from xstilts.heads import get_head_kind
from xstilts.models.loading import load_encoder
from xstilts.plan import make_plan
from xstilts.tasks import get_task


def _dropouts(module) -> set[float]:
    from torch import nn

    return {m.p for m in module.modules() if isinstance(m, nn.Dropout)}


def test_heads_take_the_phase_dropout() -> None:
    for task in ("xnli", "panx", "hellaswag"):
        t = get_task(task)
        assert _dropouts(get_head_kind(t.head).build(t, 8, 0.25)) == {0.25}
    squad = get_task("squad")
    assert _dropouts(get_head_kind(squad.head).build(squad, 8, 0.25)) == set()  # no dropout layer of its own


def test_encoder_takes_the_phase_dropout(tiny_model: Path) -> None:
    assert TrainConfig().dropout == 0.1  # the models' own value: the default changes nothing
    own = load_encoder(str(tiny_model))
    assert (own.config.hidden_dropout_prob, own.config.attention_probs_dropout_prob) == (0.1, 0.1)
    enc = load_encoder(str(tiny_model), dropout=0.3)
    assert (enc.config.hidden_dropout_prob, enc.config.attention_probs_dropout_prob) == (0.3, 0.3)
    assert _dropouts(enc) == {0.3}


@pytest.mark.parametrize("phase", ["intermediate", "target"])
def test_phases_build_encoder_and_head_with_train_dropout(phase: str, tmp_path: Path, mini_data: Path,
                                                          tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import xstilts.phases.intermediate as intermediate
    import xstilts.phases.target as target

    train = "dropout = 0.3\nmax_steps = 1\nmax_length = 32\nmax_train_examples = 8\nmax_eval_examples = 4\n"
    path = tmp_path / "c.toml"
    path.write_text(experiment_toml(tiny_model, mini_data, tmp_path / "exp", tasks=["xnli"], train=train),
                    encoding="utf-8")
    cfg = load_config(path)
    seen: list[set[float]] = []

    class Stop(Exception):
        pass

    def spy(encoder, jobs, *args, **kwargs):
        seen.extend([_dropouts(encoder), *[_dropouts(j.head) for j in jobs]])
        raise Stop

    module = intermediate if phase == "intermediate" else target
    monkeypatch.setattr(module, "train", spy)
    run = next(r for r in make_plan(cfg) if r.phase == phase)  # the sick phase-2 run, a baseline target run
    with pytest.raises(Stop):
        if phase == "intermediate":
            intermediate.run_intermediate(run, RunContext.create(cfg))
        else:
            target.run_target(run, RunContext.create(cfg))
    assert seen == [{0.3}, {0.3}]
