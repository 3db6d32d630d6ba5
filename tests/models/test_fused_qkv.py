"""One stacked query/key/value product equals the three projections up to rounding (runtime.fuse_qkv)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from xstilts.models import fused_qkv, linear, openblas
from xstilts.models.dropout import use_fast_dropout

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def encoder(tiny_model: Path) -> nn.Module:
    from transformers import AutoModel

    return AutoModel.from_pretrained(tiny_model, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(5, 1000, (4, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    mask[2, 7:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _forward_backward(encoder: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    out = encoder(**batch).last_hidden_state
    weights = torch.linspace(-1, 1, out.shape[-1])
    (out @ weights).pow(2).sum().backward()
    return out.detach(), {n: p.grad for n, p in encoder.named_parameters()}


def test_outputs_and_gradients_equal_the_three_projections(encoder: nn.Module) -> None:
    plain = copy.deepcopy(encoder)
    keys = list(encoder.state_dict())
    assert fused_qkv.install(encoder) == encoder.config.num_hidden_layers
    assert fused_qkv.installed(encoder) == encoder.config.num_hidden_layers and not fused_qkv.installed(plain)
    assert list(encoder.state_dict()) == keys  # parameters and checkpoints untouched
    assert fused_qkv.install(encoder) == encoder.config.num_hidden_layers  # a second call changes nothing
    encoder.train()
    plain.train()
    batch = _batch()
    out, grads = _forward_backward(encoder, batch)
    ref, ref_grads = _forward_backward(plain, batch)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert set(grads) == set(ref_grads)
    for name, g in grads.items():
        if ref_grads[name] is None:  # the pooler takes no part in either
            assert g is None, name
            continue
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-5, msg=name)
    # every projection's own weight got its own slice: the query's gradient is not the key's
    first = encoder.encoder.layer[0].attention.self
    assert not torch.allclose(first.query.weight.grad, first.key.weight.grad)


def test_the_fused_forward_is_what_runs(encoder: nn.Module) -> None:
    """The check would pass for a forward that silently ran the class's own: count the products."""
    fused_qkv.install(encoder)
    calls = []
    for layer in encoder.encoder.layer:
        for name in ("query", "key", "value"):
            getattr(layer.attention.self, name).register_forward_hook(lambda *a, n=name: calls.append(n))
    encoder(**_batch())
    assert calls == []  # no separate projection ran


def test_under_bf16_autocast_and_with_fast_dropout(encoder: nn.Module) -> None:
    use_fast_dropout(encoder)
    plain = copy.deepcopy(encoder)
    assert fused_qkv.install(encoder) == encoder.config.num_hidden_layers
    encoder.eval()
    plain.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = encoder(**_batch()).last_hidden_state
        ref = plain(**_batch()).last_hidden_state
    assert out.dtype == ref.dtype
    torch.testing.assert_close(out.float(), ref.float(), rtol=0.05, atol=0.05)


@pytest.mark.parametrize("library", [
    pytest.param(linear, id="oneDNN",
                 marks=pytest.mark.skipif(not linear.available(), reason="this PyTorch has no oneDNN linear operator")),
    pytest.param(openblas, id="OpenBLAS",
                 marks=pytest.mark.skipif(not openblas.available(), reason="the OpenBLAS kernel is not built here")),
])
def test_another_librarys_linear_layers_project_through_it(library, encoder: nn.Module, monkeypatch) -> None:
    library.install(encoder)
    plain = copy.deepcopy(encoder)
    assert fused_qkv.install(encoder) == encoder.config.num_hidden_layers
    seen = []
    original = library.linear
    monkeypatch.setattr(library, "linear", lambda x, w, b=None: seen.append(w.shape) or original(x, w, b))
    encoder.eval()
    plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(encoder(**_batch()).last_hidden_state, plain(**_batch()).last_hidden_state,
                                   rtol=1e-5, atol=1e-5)
    size = encoder.config.hidden_size
    assert seen.count(torch.Size([3 * size, size])) == encoder.config.num_hidden_layers


def test_an_attention_it_does_not_reproduce_is_left_alone(encoder: nn.Module) -> None:
    """A module of another class that computes something else with the same attributes fails the check."""
    first = encoder.encoder.layer[0].attention.self
    original = type(first).forward

    class Scaled(type(first)):  # attention over doubled values: the fused forward would not do this
        def forward(self, hidden_states, *args, **kwargs):
            out, weights = original(self, hidden_states, *args, **kwargs)
            return 2 * out, weights

    first.__class__ = Scaled
    assert fused_qkv.install(encoder) == 0
    assert "forward" not in vars(first)


def test_modules_without_three_projections_are_not_candidates() -> None:
    class NotAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.query, self.key = nn.Linear(4, 4), nn.Linear(4, 4)
            self.value = nn.Linear(4, 8)  # another shape
            self.attention_head_size, self.scaling, self.config, self.dropout = 2, 0.5, None, nn.Dropout(0.1)

    assert fused_qkv.candidates(NotAttention()) == []
    assert fused_qkv.install(nn.Sequential(NotAttention())) == 0
