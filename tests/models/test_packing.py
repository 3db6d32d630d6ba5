"""runtime.pack_sequences: packed rows compute what padded rows do, and only where they should."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from xstilts.errors import ConfigError
from xstilts.models import first_token, packing

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def encoder(tiny_model: Path) -> nn.Module:
    from transformers import AutoModel

    return AutoModel.from_pretrained(tiny_model, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _batch(lengths: list[int], pad_id: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.full((len(lengths), max(lengths)), pad_id)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(5, 1000, (n,), generator=gen)
        mask[i, :n] = 1
    return ids, mask


def test_first_fit_decreasing_places_every_item_once_within_capacity() -> None:
    lengths = [7, 3, 9, 2, 2, 5, 1, 8]
    rows = packing.first_fit_decreasing(lengths, 10)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 10 for row in rows)
    assert len(rows) == math.ceil(sum(lengths) / 10)  # these fit perfectly: 37 tokens in 4 rows


def test_best_packing_is_never_dearer_than_the_padded_batch_and_fewest_positions_without_the_cost() -> None:
    lengths = [30, 29, 6, 5, 5, 4, 4, 3, 3, 3]
    width, rows = packing.best_packing(lengths, max_row=64, kappa=math.inf)
    assert len(rows) * width == min(len(packing.first_fit_decreasing(lengths, w)) * w for w in range(30, 65))
    for kappa in (8.0, 64.0, 518.0):
        width, rows = packing.best_packing(lengths, max_row=64, kappa=kappa)
        assert len(rows) * width * (1 + width / kappa) <= len(lengths) * 30 * (1 + 30 / kappa)
    # equal lengths leave nothing to gain: each sequence keeps a row of its own length
    width, rows = packing.best_packing([12] * 6, max_row=128)
    assert (width, len(rows)) == (12, 6)
    # a costly attention keeps rows short, a free one packs them long
    assert packing.best_packing([10, 3, 3, 3], 128, kappa=1.0) == (10, [[0], [1, 2, 3]])
    assert packing.best_packing([10, 3, 3, 3], 128, kappa=math.inf) == (19, [[0, 1, 2, 3]])


def test_pack_then_unpack_puts_every_token_back_and_zeros_the_padding() -> None:
    ids, mask = _batch([9, 2, 5, 3, 3])
    p = packing.pack(ids, mask, pad_id=1, position_offset=2, max_row=16, kappa=math.inf)
    assert p.input_ids.shape[0] < ids.shape[0]  # fewer rows than sequences
    assert int((p.input_ids != 1).sum()) == int(mask.sum())
    back = packing.unpack(p.input_ids.unsqueeze(-1).float(), p)[..., 0]
    assert torch.equal(back, (ids * mask).float())
    # positions restart at the offset for each sequence; a token attends to its own sequence only
    positions = packing.unpack(p.position_ids.unsqueeze(-1).float(), p)[..., 0]
    assert torch.equal(positions[mask.bool()], torch.cat([torch.arange(2, 2 + n) for n in (9, 2, 5, 3, 3)]).float())
    assert p.attention_mask.shape == (p.input_ids.shape[0], 1, p.input_ids.shape[1], p.input_ids.shape[1])
    assert int(p.attention_mask.sum()) == sum(n * n for n in (9, 2, 5, 3, 3)) + int(
        sum(((row == 1).sum()) ** 2 for row in p.input_ids))  # padding attends to padding alone


def test_packed_states_and_gradients_equal_the_padded_ones(encoder: nn.Module) -> None:
    plain = copy.deepcopy(encoder)
    assert packing.install(encoder, pad_id=1) == 0 and packing.installed(encoder) and not packing.installed(plain)
    ids, mask = _batch([11, 3, 4, 2, 7, 3])
    encoder.train()
    plain.train()
    packed = packing.packed_hidden(encoder, ids, mask)
    padded = plain(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert packed.shape == padded.shape and not packed[~real].any()
    torch.testing.assert_close(packed[real], padded[real], rtol=1e-5, atol=1e-5)
    weights = torch.randn(encoder.config.hidden_size)
    (packed[real] @ weights).square().sum().backward()
    (padded[real] @ weights).square().sum().backward()
    grads = dict(plain.named_parameters())
    for name, p in encoder.named_parameters():
        if grads[name].grad is None:
            assert p.grad is None, name
            continue
        torch.testing.assert_close(p.grad, grads[name].grad, rtol=1e-3, atol=1e-4, msg=name)


def test_xlmr_style_positions_are_found(tiny_model: Path) -> None:
    from transformers import XLMRobertaConfig, XLMRobertaModel

    torch.manual_seed(0)
    model = XLMRobertaModel(XLMRobertaConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=64, pad_token_id=1,
                                             max_position_embeddings=64), add_pooling_layer=False)
    assert packing.install(model, pad_id=1) == 2  # RoBERTa counts positions from pad_id + 1
    ids, mask = _batch([6, 2, 3])
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(packing.packed_hidden(model, ids, mask)[mask.bool()],
                                   model(input_ids=ids, attention_mask=mask).last_hidden_state[mask.bool()],
                                   rtol=1e-5, atol=1e-5)


class _Leaky(nn.Module):
    """A toy encoder whose tokens see the whole row whatever the mask says: packing must refuse it."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 4)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None) -> SimpleNamespace:
        return SimpleNamespace(last_hidden_state=self.embed(input_ids).cumsum(dim=1))


def test_a_model_whose_packed_outputs_differ_is_refused_and_left_unpacked() -> None:
    model = _Leaky().train()
    with pytest.raises(ConfigError, match="pack_sequences"):
        packing.install(model, pad_id=1)
    assert not packing.installed(model) and model.training


def test_encoder_hidden_packs_training_steps_only_and_not_under_the_first_token_shortcut(
        encoder: nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    from xstilts.heads.base import encoder_hidden

    packing.install(encoder, pad_id=1)
    first_token.install(encoder, train="own-draws")
    calls = []
    monkeypatch.setattr(packing, "packed_hidden", lambda *a: calls.append(1) or torch.zeros(1))
    ids, mask = _batch([5, 2])
    batch = {"input_ids": ids, "attention_mask": mask}
    encoder.train()
    encoder_hidden(encoder, batch)
    assert calls == [1]
    with first_token.first_token_only(encoder):  # one position per row: cannot be packed
        encoder_hidden(encoder, batch)
    assert calls == [1]
    encoder.eval()
    encoder_hidden(encoder, batch)  # evaluation keeps the padded layout
    assert calls == [1]
