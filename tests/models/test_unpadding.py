"""Layers on real tokens alone equal the padded encoder up to rounding, with its dropout draws
(runtime.unpad)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from _gradients import assert_same_gradients
from torch import nn

from xstilts.models import unpadding
from xstilts.models.first_token import first_token_only
from xstilts.models.first_token import install as install_first_token

pytestmark = pytest.mark.usefixtures("one_thread")


def _encoder(tiny_model: Path, attention: str = "sdpa", dropout: float = 0.1) -> nn.Module:
    from transformers import AutoModel

    from xstilts.models.dropout import use_fast_dropout

    encoder = AutoModel.from_pretrained(tiny_model, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                                        attn_implementation="eager" if attention == "eager" else "sdpa")
    if attention == "fast":
        use_fast_dropout(encoder)
    return encoder


def _batch(padded: bool = True) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    ids = torch.randint(5, 1000, (5, 11))
    mask = torch.ones_like(ids)
    if padded:
        mask[1, 6:] = 0
        mask[3, 2:] = 0
        mask[4, 9:] = 0
        ids[mask == 0] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _step(model: nn.Module, batch: dict[str, torch.Tensor], bf16: bool = False,
          first_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(5)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        if first_only:
            with first_token_only(model):
                hidden = model(**batch).last_hidden_state
        else:
            hidden = model(**batch).last_hidden_state
    return hidden, torch.rand(4)  # the generator's next draw: where the step left it


@pytest.mark.parametrize("attention", ["sdpa", "eager", "fast"])
@pytest.mark.parametrize("bf16", [False, True])
def test_real_tokens_and_gradients_equal_the_padded_encoders_with_its_draws(tiny_model: Path, attention: str,
                                                                            bf16: bool) -> None:
    batch = _batch()
    encoder = _encoder(tiny_model, attention)
    plain = copy.deepcopy(encoder).train()
    keys = list(encoder.state_dict())
    assert unpadding.install(encoder) == 2 and unpadding.installed(encoder) and not unpadding.installed(plain)
    assert list(encoder.state_dict()) == keys  # checkpoints unchanged
    encoder.train()
    hidden, after = _step(encoder, batch, bf16)
    full, after_full = _step(plain, batch, bf16)
    assert torch.equal(after, after_full)  # the same draws, in number and order
    real = batch["attention_mask"].bool()
    assert hidden.shape == full.shape and not hidden[~real].any()  # padded back, zeros at padding
    tol = {"rtol": 2e-2, "atol": 2e-2} if bf16 else {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(hidden[real].float(), full[real].float(), **tol)
    weights = torch.randn(encoder.config.hidden_size)
    ((hidden.float() @ weights) * real).sum().backward()
    ((full.float() @ weights) * real).sum().backward()
    assert_same_gradients(encoder, plain, **tol)
    dropped = copy.deepcopy(plain)  # the check can fail: another seed's draws move every real token
    torch.manual_seed(6)
    assert not torch.allclose(dropped(**batch).last_hidden_state[real], full[real].detach(), **tol)


def test_with_the_first_token_shortcut_the_last_layer_runs_padded(tiny_model: Path) -> None:
    """Sentence-level heads: layers before the last unpadded, the last one's first token as the
    shortcut computes it, with the full layer's draws."""
    batch = _batch()
    encoder = _encoder(tiny_model)
    plain = copy.deepcopy(encoder).train()
    assert install_first_token(encoder, train="same-draws") and unpadding.install(encoder) == 2
    encoder.train()
    first, after = _step(encoder, batch, first_only=True)
    full, after_full = _step(plain, batch)
    assert first.shape == (5, 1, encoder.config.hidden_size)
    assert torch.equal(after, after_full)
    torch.testing.assert_close(first[:, 0], full[:, 0], rtol=1e-5, atol=1e-5)


def test_fused_projections_are_used_on_real_tokens(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With runtime.fuse_qkv the unpadded layers project query, key and value as one product too."""
    from xstilts.models import fused_qkv

    batch = _batch()
    encoder = _encoder(tiny_model)
    plain = copy.deepcopy(encoder).train()
    assert fused_qkv.install(encoder) == 2 and unpadding.install(encoder) == 2
    encoder.train()
    calls = []
    original = fused_qkv.project
    monkeypatch.setattr(fused_qkv, "project", lambda *a: calls.append(1) or original(*a))
    hidden, after = _step(encoder, batch)
    full, after_full = _step(plain, batch)
    assert len(calls) == 2 and torch.equal(after, after_full)
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(hidden[real], full[real], rtol=1e-5, atol=1e-5)


def test_evaluation_equals_the_padded_encoder(tiny_model: Path) -> None:
    batch = _batch()
    encoder = _encoder(tiny_model).eval()
    plain = copy.deepcopy(encoder)
    unpadding.install(encoder)
    with torch.no_grad():
        hidden, full = encoder(**batch).last_hidden_state, plain(**batch).last_hidden_state
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(hidden[real], full[real], rtol=1e-5, atol=1e-5)


def test_a_batch_without_padding_runs_the_ordinary_encoder(tiny_model: Path) -> None:
    batch = _batch(padded=False)
    encoder = _encoder(tiny_model).eval()
    plain = copy.deepcopy(encoder)
    unpadding.install(encoder)
    with torch.no_grad():
        assert torch.equal(encoder(**batch).last_hidden_state, plain(**batch).last_hidden_state)


def test_hidden_states_of_every_layer_as_the_padded_encoder_returns_them(tiny_model: Path) -> None:
    """output_hidden_states (retrieval reads a middle layer): transformers records it with hooks on
    the layers, so those batches run the padded layers."""
    batch = _batch()
    encoder = _encoder(tiny_model).eval()
    plain = copy.deepcopy(encoder)
    unpadding.install(encoder)
    with torch.no_grad():
        states = encoder(**batch, output_hidden_states=True).hidden_states
        reference = plain(**batch, output_hidden_states=True).hidden_states
    assert len(states) == len(reference) == 3
    for got, want in zip(states, reference, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_the_draw_kernels_hooks_do_not_stop_it(tiny_model: Path, layer_calls: list[int]) -> None:
    """The draw kernel holds its mode with hooks on attention modules: those are not watchers, so the
    layers still run on real tokens, and draw what the padded encoder draws."""
    from xstilts.models import draws

    batch = _batch()
    encoder = _encoder(tiny_model)
    plain = copy.deepcopy(encoder).train()
    assert draws.install(encoder) and unpadding.install(encoder)
    encoder.train()
    with draws.drawing():
        hidden, after = _step(encoder, batch)
    full, after_full = _step(plain, batch)
    assert len(layer_calls) == 2 and torch.equal(after, after_full)
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(hidden[real], full[real], rtol=1e-5, atol=1e-5)


def test_real_positions_read_key_padding_masks_only() -> None:
    keys = torch.tensor([[True, True, False], [True, True, True]])
    bool_mask = keys[:, None, None, :].expand(2, 1, 3, 3)
    assert unpadding.real_positions(bool_mask).tolist() == [0, 1, 3, 4, 5]
    additive = torch.zeros(2, 1, 3, 3).masked_fill(~bool_mask, torch.finfo(torch.float32).min)
    assert unpadding.real_positions(additive).tolist() == [0, 1, 3, 4, 5]
    assert unpadding.real_positions(None) is None
    assert unpadding.real_positions(torch.ones(2, 1, 3, 3, dtype=torch.bool)) is None  # no padding
    block = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)  # a packed row: two sequences
    assert unpadding.real_positions(block.expand(2, 1, 3, 3)) is None


def test_batches_with_little_padding_run_padded_when_asked() -> None:
    """unpad_min_padding: under that share of the positions padding, the gathers would cost more than they save."""
    def mask(real: list[int], length: int) -> torch.Tensor:
        keys = torch.arange(length)[None, :] < torch.tensor(real)[:, None]
        return keys[:, None, None, :].expand(len(real), 1, length, length)

    assert unpadding.real_positions(mask([20, 20, 20, 19], 20)).numel() == 79  # by default any padding
    assert unpadding.real_positions(mask([20, 20, 20, 19], 20), 0.05) is None  # 1 of 80 positions padding
    assert unpadding.real_positions(mask([20, 20, 20, 17], 20), 0.05) is None  # 3 of 80
    assert unpadding.real_positions(mask([20, 20, 20, 16], 20), 0.05).numel() == 76  # 4 of 80: exactly 5 %


def test_the_threshold_reaches_the_encoder(tiny_model: Path, layer_calls: list[int]) -> None:
    from xstilts.config import RuntimeConfig
    from xstilts.training.speed import prepare_encoder

    batch = _batch()  # 16 of 55 positions padding: 29 %
    # without the attention kernel (with it, evaluation unpads every batch: tests/models/test_attention_kernel.py)
    for min_padding, calls in ((0.25, 2), (0.3, 0)):
        encoder = _encoder(tiny_model)
        runtime = RuntimeConfig(threads=1, trim_vocab=False, unpad_min_padding=min_padding, attention_kernel=False)
        prepare_encoder(encoder, runtime, [], None)
        layer_calls.clear()
        with torch.no_grad():
            encoder.eval()(**batch)
        assert len(layer_calls) == calls, min_padding


def test_packed_rows_run_as_before_and_padded_batches_unpadded(tiny_model: Path, layer_calls: list[int]) -> None:
    """pack_sequences with unpad: a packed training batch (block-diagonal mask) takes the padded
    path, so packing trains as it did; the padded batches of evaluation are unpadded."""
    from xstilts.models import packing

    batch = _batch()
    encoder = _encoder(tiny_model)
    packing.install(encoder, 1)
    plain = copy.deepcopy(encoder).train()
    unpadding.install(encoder)
    encoder.train()
    torch.manual_seed(5)
    packed = packing.packed_hidden(encoder, batch["input_ids"], batch["attention_mask"])
    assert not layer_calls  # the packed rows ran the ordinary layers
    torch.manual_seed(5)
    reference = packing.packed_hidden(plain, batch["input_ids"], batch["attention_mask"])
    assert torch.equal(packed, reference)
    with torch.no_grad():
        encoder.eval()(**batch)
    assert len(layer_calls) == 2  # evaluation's padded batch: both layers on real tokens


def test_not_bert_shaped_installs_nothing() -> None:
    assert unpadding.install(nn.Linear(3, 3)) == 0
    assert not unpadding.installed(nn.Linear(3, 3))


def test_the_runtime_switch(tiny_model: Path) -> None:
    from xstilts.config import RuntimeConfig
    from xstilts.plan import runtime_key
    from xstilts.training.speed import prepare_encoder

    on = RuntimeConfig(threads=1, unpad=True)
    assert prepare_encoder(_encoder(tiny_model), on, [], None).unpadded == 2
    assert RuntimeConfig().unpad  # on by default
    assert prepare_encoder(_encoder(tiny_model), RuntimeConfig(threads=1, unpad=False), [], None).unpadded == 0
    packed = RuntimeConfig(threads=1, unpad=True, pack_sequences=True)
    assert prepare_encoder(_encoder(tiny_model), packed, [], None).unpadded == 2  # for evaluation's padded batches
    assert runtime_key(on) == runtime_key(RuntimeConfig(threads=1, unpad=False))  # rounding only: not in run ids
    assert runtime_key(on) == runtime_key(RuntimeConfig(threads=1, unpad_min_padding=0.0))
    assert RuntimeConfig().unpad_min_padding == 0.05  # XNLI's nearly unpadded batches run padded
