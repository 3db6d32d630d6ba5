"""Multiple-choice head: (context, choice) pairs, the (B, C, L) → (B·C, L) reshape, scores, accuracy."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from xstilts.heads import get_head_kind
from xstilts.heads.multiple_choice import choice_pairs
from xstilts.tasks import get_task
from xstilts.tasks.base import MultipleChoiceExample

EXAMPLES = [
    MultipleChoiceExample("A woman mixes flour and sugar in a bowl.", "She",
                          ("bakes cookies.", "swims away.", "paints the bowl.", "eats the spoon."), 0),
    MultipleChoiceExample("Where would you keep milk?", None, ("fridge", "oven", "sock"), 0),
    MultipleChoiceExample("It rained for three days.", "What happened to the river?",
                          ("It dried up.", "It flooded.", "It froze.", "It moved."), 1),
]


@pytest.fixture(scope="module")
def tokenizer(default_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_model)


class RecordingEncoder(nn.Module):
    """Stands in for a HF encoder: remembers input shapes; hidden state = embedding of the first id."""

    def __init__(self, hidden: int = 8):
        super().__init__()
        self.embed = nn.Embedding(300000, hidden)
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        self.shapes.append(tuple(input_ids.shape))
        return SimpleNamespace(last_hidden_state=self.embed(input_ids))


def test_pairs_put_question_before_each_choice() -> None:
    assert choice_pairs(EXAMPLES[0])[1] == (EXAMPLES[0].context, "She swims away.")
    assert choice_pairs(EXAMPLES[1])[0] == ("Where would you keep milk?", "fridge")


def test_encode_and_collate(tokenizer: Any) -> None:
    kind = get_head_kind("multiple_choice")
    feats = kind.encode(get_task("hellaswag"), EXAMPLES, tokenizer, max_length=12)
    assert [f["n_choices"] for f in feats] == [4, 3, 4]
    assert [f["example_index"] for f in feats] == [0, 1, 2]
    assert all(len(seq) <= 12 for f in feats for seq in f["input_ids"])
    first = tokenizer.decode(feats[1]["input_ids"][0], skip_special_tokens=True)
    assert first.startswith("Where would you keep milk?") and first.endswith("fridge")
    assert feats[0]["length"] == 4 * max(len(s) for s in feats[0]["input_ids"])
    batch = kind.collate(feats, tokenizer.pad_token_id)
    b, c, length = batch["input_ids"].shape
    assert (b, c) == (3, 4) and length == max(len(s) for f in feats for s in f["input_ids"])
    assert batch["choice_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1]]
    assert batch["attention_mask"][1, 3].sum() == 0
    assert batch["labels"].tolist() == [0, 0, 1]
    lengths = batch["attention_mask"].sum(-1)
    assert lengths[0, 0] == len(feats[0]["input_ids"][0])


def test_module_flattens_choices_and_scores_each(tokenizer: Any) -> None:
    kind = get_head_kind("multiple_choice")
    feats = kind.encode(get_task("hellaswag"), EXAMPLES, tokenizer, max_length=12)
    batch = kind.collate(feats, tokenizer.pad_token_id)
    encoder = RecordingEncoder()
    module = kind.build(get_task("hellaswag"), 8, 0.1)
    module.eval()
    scores = module(encoder, batch)
    assert encoder.shapes == [(11, batch["input_ids"].shape[2])]  # 4 + 3 + 4 real choices, flattened
    assert scores.shape == (3, 4)
    assert scores[1, 3] < -1e30  # the padded choice can never win
    # the score of a choice depends only on its own sequence: same as scoring it alone
    alone = module(encoder, kind.collate([feats[2]], tokenizer.pad_token_id))
    torch.testing.assert_close(alone[0], scores[2], rtol=1e-5, atol=1e-6)
    loss = kind.loss(scores, batch)
    assert torch.isfinite(loss)
    expected = nn.functional.cross_entropy(scores.float(), batch["labels"])
    torch.testing.assert_close(loss, expected)
    outs = kind.outputs(scores.detach(), batch)
    assert [len(o) for o in outs] == [4, 3, 4]


def test_evaluate_accuracy() -> None:
    kind = get_head_kind("multiple_choice")
    outs = [np.array([3.0, 1, 0, 0]), np.array([0.0, 2, 1]), np.array([0.0, 5, 1, 1])]
    feats = [{"example_index": i} for i in range(3)]
    ev = kind.evaluate(get_task("hellaswag"), EXAMPLES, feats, outs)
    assert ev.stats["accuracy"][:, 0].tolist() == [1.0, 0.0, 1.0]
    assert ev.scores["accuracy"] == pytest.approx(200 / 3)


def test_trains_with_a_real_encoder(tokenizer: Any, tiny_model: Path) -> None:
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(tiny_model)
    kind = get_head_kind("multiple_choice")
    feats = kind.encode(get_task("cosmosqa"), EXAMPLES, tokenizer, max_length=24)
    batch = kind.collate(feats, tokenizer.pad_token_id)
    module = kind.build(get_task("cosmosqa"), encoder.config.hidden_size, 0.1)
    loss = kind.loss(module(encoder, batch), batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert encoder.get_input_embeddings().weight.grad is not None
