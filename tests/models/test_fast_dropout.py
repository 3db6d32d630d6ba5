"""runtime.fast_dropout: right keep rate and scale, exact gradients, seeded, and nothing changes in eval."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from xstilts.models import draws
from xstilts.models.dropout import (
    ATTENTION_NAME,
    FastDropout,
    _direct,
    drawn_mask,
    draws_with_pytorch,
    fast_dropout,
    fast_dropout_attention,
    keep_mask,
    keep_threshold,
    use_fast_dropout,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_probability_is_rounded_to_sixteen_bits() -> None:
    assert keep_threshold(0.1) == (6554 - 32768, 6554 / 65536)
    assert keep_threshold(0.0) == (-32768, 0.0)  # every signed 16-bit word is kept
    assert keep_threshold(0.5) == (0, 0.5)
    with pytest.raises(ValueError, match="dropout probability"):
        keep_threshold(1.0)
    with pytest.raises(ValueError, match="dropout probability"):
        FastDropout(-0.1)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_masks_keep_at_the_rate_in_every_word_of_a_draw(p: float) -> None:
    """Each of the four 16-bit words cut from one 64-bit draw keeps at 1 - p (the top one too)."""
    torch.manual_seed(0)
    n = 400_000
    keep = keep_mask((n,), p).view(-1, 4).double()
    _, used = keep_threshold(p)
    sd = math.sqrt(used * (1 - used) / (n // 4))
    for position in range(4):
        assert abs(keep[:, position].mean().item() - (1 - used)) < 5 * sd, position
    # neighbours are independent: P(both kept) = (1 - p)^2
    both = (keep[:, 0] * keep[:, 1]).mean().item()
    assert abs(both - (1 - used) ** 2) < 5 * math.sqrt((1 - used) ** 2 * (1 - (1 - used) ** 2) / (n // 4))


def test_kept_units_are_scaled_and_gradients_flow_only_through_them() -> None:
    torch.manual_seed(1)
    x = (torch.rand(64, 33) + 0.5).requires_grad_(True)  # no zeros, so a zero output means dropped
    y = fast_dropout(x, 0.25)
    kept = y != 0
    scale = 1 / (1 - keep_threshold(0.25)[1])
    torch.testing.assert_close(y[kept], x.detach()[kept] * scale, rtol=0, atol=1e-6)
    assert 0.6 < kept.double().mean().item() < 0.9
    g = torch.randn_like(x)
    y.backward(g)
    torch.testing.assert_close(x.grad, torch.where(kept, g * scale, torch.zeros_like(g)), rtol=0, atol=1e-6)


def test_seeded_masks_repeat_and_eval_is_the_identity() -> None:
    x = torch.randn(8, 16, 32)
    outs = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        outs.append(fast_dropout(x, 0.1))
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    assert fast_dropout(x, 0.1, training=False) is x and fast_dropout(x, 0.0) is x
    module = FastDropout(0.1).eval()
    assert module(x) is x and "p=0.1" in repr(module)


class _Attention(nn.Module):
    is_causal = False


def _qkv(dtype: torch.dtype = torch.float32, requires_grad: bool = False) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(2)
    return tuple(torch.randn(3, 2, 7, 8, dtype=dtype, requires_grad=requires_grad) for _ in range(3))


def _masks() -> dict[str, torch.Tensor | None]:
    valid = torch.ones(3, 7, dtype=torch.bool)
    valid[0, 4:] = False  # padded keys
    valid[2, 6:] = False
    boolean = valid[:, None, None, :].expand(3, 1, 7, 7)
    additive = torch.zeros(3, 1, 7, 7).masked_fill(~boolean, torch.finfo(torch.float32).min)
    return {"none": None, "bool": boolean, "additive": additive}


@pytest.mark.parametrize("mask", ["none", "bool", "additive"])
def test_attention_written_out_equals_sdpa_when_nothing_is_dropped(mask: str) -> None:
    """With p below 1/131,072 no unit is dropped: the hand-written path must then be SDPA's arithmetic."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    module = _Attention().train()
    q, k, v = _qkv()
    m = _masks()[mask]
    ours, _ = fast_dropout_attention(module, q, k, v, m, dropout=1e-7, scaling=0.3)
    ref, _ = sdpa_attention_forward(module, q, k, v, m, dropout=0.0, scaling=0.3)
    assert ours.shape == ref.shape == (3, 7, 2, 8)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    module.eval()  # not training: SDPA itself, whatever p says
    assert torch.equal(fast_dropout_attention(module, q, k, v, m, dropout=0.5, scaling=0.3)[0], ref)


def test_attention_gradients_are_exact_for_a_fixed_mask() -> None:
    module = _Attention().train()
    q, k, v = _qkv(torch.float64, requires_grad=True)
    mask = _masks()["bool"]

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(3)  # the same mask at every evaluation gradcheck makes
        return fast_dropout_attention(module, q, k, v, mask, dropout=0.3)[0]

    assert torch.autograd.gradcheck(attend, (q, k, v))
    torch.manual_seed(3)
    dropped = attend(q, k, v)
    with torch.no_grad():
        full = fast_dropout_attention(module.eval(), q, k, v, mask, dropout=0.3)[0]
    assert not torch.allclose(dropped, full)  # something was dropped


def test_swapped_encoder_is_bit_identical_in_eval_and_drops_in_training(tiny_model) -> None:
    from transformers import AutoModel

    base = AutoModel.from_pretrained(tiny_model).eval()
    assert base.config._attn_implementation == "sdpa"
    ids = torch.randint(5, 1000, (4, 12))
    attention = torch.ones_like(ids)
    attention[1, 8:] = 0
    with torch.no_grad():
        before = base(input_ids=ids, attention_mask=attention).last_hidden_state
    fast = copy.deepcopy(base)
    n_dropout = sum(type(m) is nn.Dropout for m in base.modules())
    assert use_fast_dropout(fast) == n_dropout == 3 * base.config.num_hidden_layers + 1
    assert not any(type(m) is nn.Dropout for m in fast.modules())
    assert all(not m.training for m in fast.modules())  # eval mode kept through the swap
    assert fast.config._attn_implementation == ATTENTION_NAME
    with torch.no_grad():
        assert torch.equal(fast(input_ids=ids, attention_mask=attention).last_hidden_state, before)
        fast.train()
        torch.manual_seed(4)
        a = fast(input_ids=ids, attention_mask=attention).last_hidden_state
        torch.manual_seed(4)
        b = fast(input_ids=ids, attention_mask=attention).last_hidden_state
    assert torch.equal(a, b) and not torch.allclose(a, before)
    assert base.config._attn_implementation == "sdpa"  # the original is untouched


def test_what_is_left_to_draw_with_pytorch_after_the_swap(tiny_model) -> None:
    """The loop holds the draw kernel's dispatch mode only where PyTorch's dropout still draws."""
    from transformers import AutoModel

    base = AutoModel.from_pretrained(tiny_model)
    assert draws_with_pytorch(base)  # nn.Dropout modules and SDPA's attention dropout
    fast = copy.deepcopy(base)
    use_fast_dropout(fast)
    assert not draws_with_pytorch(fast)
    eager = AutoModel.from_pretrained(tiny_model, attn_implementation="eager")
    use_fast_dropout(eager)  # the modules are swapped, but eager attention drops with F.dropout
    assert eager.config._attn_implementation == "eager" and draws_with_pytorch(eager)
    silent = AutoModel.from_pretrained(tiny_model, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    assert not draws_with_pytorch(silent)  # nothing drops at all
    assert draws_with_pytorch(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.9])
@pytest.mark.parametrize("module", ["pytorch", "kernel", "fast", "eval"])
def test_drawn_masks_are_the_modules_on_ones_and_leave_the_generator_where_it_does(
        dtype: torch.dtype, p: float, module: str) -> None:
    drop = {"pytorch": nn.Dropout(p), "kernel": draws.KernelDropout(p), "fast": FastDropout(p),
            "eval": nn.Dropout(p).eval()}[module]
    drop.train(module != "eval")
    like = torch.empty((), dtype=dtype)
    results = []
    for drawn in (lambda shape: drop(torch.ones(shape, dtype=dtype)), lambda shape: drawn_mask(drop, shape, like)):
        torch.manual_seed(3)
        with draws.drawing():
            masks = [drawn(shape) for shape in ((4, 9, 16), (2, 3, 5, 5), (1, 1000))]
        results.append((masks, torch.get_rng_state()))
    (expected, state), (got, state_after) = results
    assert all(torch.equal(a, b) and a.dtype == b.dtype for a, b in zip(expected, got, strict=True))
    assert torch.equal(state, state_after)
    # the direct draw is taken for PyTorch's own dropout in training wherever it draws at all
    assert _direct(drop, like) == (module in ("pytorch", "kernel") and p > 0)
