"""Vocabulary trimming is exact: same logits, same training, full-vocabulary checkpoints."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from xstilts.checkpoint import load_encoder_weights, save_encoder
from xstilts.errors import XstiltsError
from xstilts.models.vocab import (
    TrimmedEmbedding,
    full_state_dict,
    trim_vocabulary,
    untrim_vocabulary,
    used_token_ids,
)

KEY = "embeddings.word_embeddings.weight"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def encoder_and_batch(tiny_model: Path, shared_data: Path) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """The tiny model and a padded batch of real PAN-X English sentences."""
    from transformers import AutoModel, AutoTokenizer

    from xstilts.tasks import get_task

    tok = AutoTokenizer.from_pretrained(tiny_model)
    examples = get_task("panx").at(shared_data).load("train", "en", limit=12)
    enc = tok([list(e.tokens) for e in examples], is_split_into_words=True, padding=True, return_tensors="pt")
    torch.manual_seed(0)
    model = AutoModel.from_pretrained(tiny_model)
    return model, {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _hidden(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state


def test_trimmed_and_full_models_give_identical_outputs(encoder_and_batch) -> None:
    full, batch = encoder_and_batch
    trimmed = copy.deepcopy(full)
    features = [{"input_ids": row} for row in batch["input_ids"].tolist()]
    module = trim_vocabulary(trimmed, used_token_ids([features]))
    assert isinstance(trimmed.get_input_embeddings(), TrimmedEmbedding)
    assert len(module.kept) < 1000 < module.num_embeddings  # a few hundred of 250k rows
    assert module.weight.shape == (len(module.kept) + 1, 32)  # + the decay sentinel
    full.eval()
    trimmed.eval()
    with torch.no_grad():
        assert torch.equal(_hidden(full, batch), _hidden(trimmed, batch))


def test_ids_outside_the_trimmed_vocabulary_are_an_error(encoder_and_batch) -> None:
    full, batch = encoder_and_batch
    model = copy.deepcopy(full)
    pad = full.get_input_embeddings().padding_idx
    trim_vocabulary(model, torch.tensor([7, 2, 5]))
    with pytest.raises(XstiltsError, match="outside the trimmed vocabulary"):
        _hidden(model, batch)
    # the padding id is kept even when not asked for: collate pads with it
    emb = model.get_input_embeddings()
    assert emb.kept.tolist() == sorted([2, 5, 7, pad])
    assert emb.padding_idx == emb.kept.tolist().index(pad)
    with pytest.raises(XstiltsError, match="already trimmed"):
        trim_vocabulary(model, torch.tensor([3]))
    with pytest.raises(XstiltsError, match="must lie in"):
        TrimmedEmbedding(torch.nn.Embedding(10, 4), torch.tensor([3, 10]))


def test_used_token_ids_flattens_choices_and_adds_extras() -> None:
    sets = [[{"input_ids": [0, 7, 2]}, {"input_ids": [0, 9, 9, 2]}],
            [{"input_ids": [[0, 4, 2], [0, 4, 4, 11, 2]]}]]  # multiple choice: ragged sequences
    assert used_token_ids(sets, extra=[1]).tolist() == [0, 1, 2, 4, 7, 9, 11]


def test_trained_trimmed_model_matches_full_training(encoder_and_batch) -> None:
    """AdamW with weight decay, same batches: trimmed-then-expanded equals full training."""
    base, batch = encoder_and_batch
    full, trimmed = copy.deepcopy(base), copy.deepcopy(base)
    trim_vocabulary(trimmed, batch["input_ids"].reshape(-1))
    for model in (full, trimmed):
        torch.manual_seed(1)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
        for _ in range(3):
            _hidden(model, batch).pow(2).mean().backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
    expanded = full_state_dict(trimmed)
    reference = full.state_dict()
    assert expanded.keys() == reference.keys()
    assert expanded[KEY].shape == reference[KEY].shape
    untouched = torch.ones(reference[KEY].shape[0], dtype=torch.bool)
    untouched[trimmed.get_input_embeddings().kept] = False
    # rows no input reached were only decayed (by 0.999 per step here), and that is reproduced
    assert not torch.equal(reference[KEY][untouched], base.state_dict()[KEY][untouched])
    for key in reference:
        torch.testing.assert_close(expanded[key], reference[key], msg=key)


def test_checkpoint_of_a_trimmed_model_restores_the_full_vocabulary(encoder_and_batch, tmp_path: Path,
                                                                      ) -> None:
    base, batch = encoder_and_batch
    model = copy.deepcopy(base)
    original = base.state_dict()[KEY].clone()
    emb = trim_vocabulary(model, batch["input_ids"].reshape(-1))
    with torch.no_grad():  # "training" without weight decay: only the kept rows move
        emb.weight[:-1] += torch.randn_like(emb.weight[:-1])
    save_encoder(model, tmp_path)
    fresh = copy.deepcopy(base)
    load_encoder_weights(fresh, tmp_path)
    restored = fresh.state_dict()[KEY]
    assert restored.shape == original.shape
    kept = emb.kept
    assert torch.equal(restored[kept], emb.weight[:-1].detach())
    untouched = torch.ones(len(original), dtype=torch.bool)
    untouched[kept] = False
    assert torch.equal(restored[untouched], original[untouched])
    # and the restored full model computes what the trimmed one did
    fresh.eval()
    model.eval()
    with torch.no_grad():
        assert torch.equal(_hidden(fresh, batch), _hidden(model, batch))


def test_untrim_puts_back_a_full_embedding(encoder_and_batch) -> None:
    base, batch = encoder_and_batch
    model = copy.deepcopy(base)
    trim_vocabulary(model, batch["input_ids"].reshape(-1))
    full = untrim_vocabulary(model)
    assert isinstance(full, torch.nn.Embedding) and model.get_input_embeddings() is full
    assert full.padding_idx == base.get_input_embeddings().padding_idx
    assert torch.equal(full.weight, base.get_input_embeddings().weight)
    assert untrim_vocabulary(model) is None
