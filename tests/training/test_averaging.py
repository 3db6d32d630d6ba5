"""Checkpoint averaging: the exact mean of known weights, last-k keeps k copies, wrapped modules are
unwrapped, and an averaged model loads and evaluates under every head kind."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from xstilts.evaluation.predict import evaluate
from xstilts.heads import get_head_kind
from xstilts.tasks import get_task
from xstilts.tasks.base import ClassificationExample, MultipleChoiceExample, SpanQAExample, TaggingExample
from xstilts.training.averaging import WeightAverage, average_state_dicts

pytestmark = pytest.mark.usefixtures("one_thread")


def _set(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    module.load_state_dict(state)


def _random_state(module: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone())
            for k, v in module.state_dict().items()}


def test_average_of_two_known_state_dicts_is_their_exact_mean() -> None:
    lin = nn.Linear(7, 5)
    a, b = _random_state(lin, 1), _random_state(lin, 2)
    avg = WeightAverage([lin], "all")
    for step, state in ((2, a), (4, b)):
        _set(lin, state)
        avg.update(step)
    got = avg.states()[0]
    for key in a:
        exact = ((a[key].double() + b[key].double()) / 2).float()  # the correctly rounded mean
        assert torch.equal(got[key], exact), key
    assert avg.steps == [2, 4] and avg.count == 2
    # a hand-checkable case: the mean of 1 and 2 is 1.5, of -3 and 5 is 1, bit for bit
    small = nn.Linear(1, 1)
    avg2 = WeightAverage([small], "all")
    for w, bias in ((1.0, -3.0), (2.0, 5.0)):
        _set(small, {"weight": torch.tensor([[w]]), "bias": torch.tensor([bias])})
        avg2.update(0)
    assert avg2.states()[0]["weight"].item() == 1.5 and avg2.states()[0]["bias"].item() == 1.0
    assert torch.equal(average_state_dicts([a, b])["weight"], got["weight"])


def test_last_k_averages_only_the_last_k_and_keeps_k_copies() -> None:
    lin = nn.Linear(3, 2)
    states = [_random_state(lin, s) for s in range(5)]
    avg = WeightAverage([lin], "last-k", k=2)
    for step, state in enumerate(states, start=1):
        _set(lin, state)
        avg.update(step)
    assert len(avg._ring) == 2 and avg.steps == [4, 5] and avg.count == 5
    want = average_state_dicts(states[-2:])
    for key, value in avg.states()[0].items():
        assert torch.equal(value, want[key])
        assert not torch.equal(value, average_state_dicts(states)[key])
    assert avg.name == "average-last2" and WeightAverage([lin], "all").name == "average-all"


def test_integer_buffers_are_not_averaged_and_wrapped_modules_are_unwrapped() -> None:
    class WithBuffer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.register_buffer("ids", torch.arange(4))

    plain = WithBuffer()
    wrapped = torch.compile(plain)  # an OptimizedModule: its own state dict keys say "_orig_mod."
    assert any(k.startswith("_orig_mod.") for k in wrapped.state_dict())
    avg = WeightAverage([wrapped], "all")
    states = [_random_state(plain, 3), _random_state(plain, 4)]
    for s in states:
        plain.load_state_dict(s)
        avg.update(1)
    plain.ids += 10  # the latest integer buffer is kept
    avg.update(2)
    averaged = avg.states()[0]
    assert set(averaged) == {"lin.weight", "lin.bias", "ids"}
    assert torch.equal(averaged["ids"], torch.arange(4) + 10)
    avg.load_into()
    three = average_state_dicts([*states, {**states[1], "ids": torch.arange(4) + 10}])
    assert torch.equal(plain.lin.weight, three["lin.weight"])
    with pytest.raises(ValueError, match="unknown averaging mode"):
        WeightAverage([plain], "median")
    with pytest.raises(RuntimeError, match="no checkpoint"):
        WeightAverage([plain], "all").states()


CONTEXT = "Denver Broncos won Super Bowl 50 at Levi's Stadium in Santa Clara, California, in 2016."
CASES: dict[str, tuple[str, list[Any]]] = {
    "tagging": ("panx", [TaggingExample(("Anna", "lives", "in", "Berlin"), ("B-PER", "O", "O", "B-LOC")),
                         TaggingExample(("Acme", "Corp", "hired", "Bob"), ("B-ORG", "I-ORG", "O", "B-PER"))]),
    "classification": ("xnli", [ClassificationExample("A man sleeps.", "Someone rests.", "entailment"),
                                ClassificationExample("A dog runs.", "A cat sits.", "contradiction"),
                                ClassificationExample("It rains.", "The sky is grey.", "neutral")]),
    "span_qa": ("squad", [SpanQAExample("q1", "Who won?", CONTEXT, (("Denver Broncos", 0),)),
                          SpanQAExample("q2", "Where?", CONTEXT, (("Santa Clara", CONTEXT.index("Santa Clara")),))]),
    "multiple_choice": ("cosmosqa", [MultipleChoiceExample("It rained all week.", "What happened?",
                                                           ("The river rose.", "It was dry.", "Snow fell.",
                                                            "Nothing."), 0),
                                     MultipleChoiceExample("She was hungry.", "What did she do?",
                                                           ("Slept.", "Ate lunch.", "Ran.", "Sang."), 1)]),
}


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.mark.parametrize("head", sorted(CASES))
def test_averaged_model_loads_and_evaluates_under_every_head_kind(head: str, tiny_model: Path,
                                                                  tokenizer: Any) -> None:
    from transformers import AutoModel

    task_name, examples = CASES[head]
    task, kind = get_task(task_name), get_head_kind(head)
    assert task.head == head
    torch.manual_seed(0)
    encoder = AutoModel.from_pretrained(tiny_model)
    module = kind.build(task, encoder.config.hidden_size, 0.0)
    feats = kind.encode(task, examples, tokenizer, max_length=32)
    avg = WeightAverage([encoder, module], "all")
    snapshots = []
    for step in (1, 2):  # two "checkpoints": perturb every float weight between them
        with torch.no_grad():
            for p in [*encoder.parameters(), *module.parameters()]:
                p.add_(0.01 * torch.randn_like(p))
        snapshots.append([copy.deepcopy(encoder.state_dict()), copy.deepcopy(module.state_dict())])
        avg.update(step)
    avg.load_into()
    for i, m in enumerate((encoder, module)):
        want = average_state_dicts([s[i] for s in snapshots])
        for key, value in m.state_dict().items():
            assert torch.equal(value, want[key]), (head, key)
    ev = evaluate(encoder, module, kind, task, examples, feats, tokenizer.pad_token_id, 4, True, False)
    metric = task.metric
    assert 0.0 <= ev.scores[metric] <= 100.0
    assert len(ev.stats[metric]) == len(examples)
    # a fresh model given the averaged weights evaluates identically
    fresh_enc = AutoModel.from_pretrained(tiny_model)
    fresh_head = kind.build(task, encoder.config.hidden_size, 0.0)
    fresh_enc.load_state_dict(avg.states()[0])
    fresh_head.load_state_dict(avg.states()[1])
    again = evaluate(fresh_enc, fresh_head, kind, task, examples, feats, tokenizer.pad_token_id, 4, True, False)
    assert np.array_equal(again.stats[metric], ev.stats[metric])
