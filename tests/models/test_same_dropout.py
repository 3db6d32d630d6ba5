"""runtime.same_dropout: PyTorch's own dropout masks drawn faster, equal bit for bit (outputs, gradients,
the generator's state), and PyTorch's dropout itself wherever that cannot be promised."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from xstilts.models.same_dropout import (
    SameDropout,
    applies,
    draws_match,
    keep_below,
    keep_mask,
    same_dropout,
    scale_for,
    use_same_dropout,
)

pytestmark = pytest.mark.usefixtures("one_thread")

needs_generic_bernoulli = pytest.mark.skipif(
    not draws_match(), reason="this CPU's bernoulli_ draws otherwise (MKL): same_dropout is F.dropout here")


def _both(x: torch.Tensor, p: float, seed: int = 3) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """(output, input gradient, generator state after) of F.dropout and of same_dropout, same seed."""
    out = []
    for fn in (lambda t: torch.nn.functional.dropout(t, p, True), lambda t: same_dropout(t, p, True)):
        leaf = x.detach().clone().requires_grad_(True)
        torch.manual_seed(seed)
        y = fn(leaf)
        state = torch.get_rng_state()
        (grad,) = torch.autograd.grad(y, leaf, torch.linspace(-2, 3, y.numel()).view(y.shape).to(y.dtype))
        out.append((y, grad, state))
    return out[0], out[1]


def test_threshold_is_the_exact_integer_form_of_bernoullis_comparison() -> None:
    """bernoulli_ keeps a unit when m / 2**53 < 1 - p (m: a draw's low 53 bits); keep_below is the first m not kept."""
    assert keep_below(0.5) == 1 << 52 and keep_below(0.0) == 1 << 53  # p = 0: every unit kept
    for p in (0.1, 0.3, 0.7, 0.123456789, 0.9999, 1e-9):
        below = keep_below(p)
        assert (below - 1) * 2.0 ** -53 < 1 - p and not below * 2.0 ** -53 < 1 - p, p


def test_scale_is_the_value_pytorchs_noise_holds() -> None:
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        noise = torch.nn.functional.dropout(torch.ones(4096, dtype=dtype), 0.1, True)
        assert set(noise.unique().tolist()) == {0.0, scale_for(0.1, dtype)}
    assert scale_for(0.1, torch.bfloat16) != scale_for(0.1, torch.float32)  # rounded in the dtype


@needs_generic_bernoulli
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.7])
def test_outputs_gradients_and_generator_equal_pytorchs(dtype: torch.dtype, p: float) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 11, 37).to(dtype)
    x[0, 0, :5] = torch.tensor([0.0, -0.0, float("inf"), -1e-30, 65504.0]).to(dtype)
    (y, g, s), (y2, g2, s2) = _both(x, p)
    assert applies(x, p)
    torch.testing.assert_close(y, y2, rtol=0, atol=0, equal_nan=True)  # inf × a dropped unit is NaN in both
    assert torch.equal(y.signbit(), y2.signbit())  # and -0.0 stays -0.0
    assert torch.equal(g, g2) and torch.equal(s, s2)
    assert 0 < (y == 0).sum() < y.numel()


@needs_generic_bernoulli
def test_masks_span_slices_in_draw_order() -> None:
    """Several slices (and a short last one) draw what one bernoulli_ call draws."""
    generator = torch.Generator().manual_seed(11)
    whole = torch.empty(10_001).bernoulli_(0.8, generator=generator).bool()
    after = generator.get_state()
    generator.manual_seed(11)
    sliced = keep_mask((10_001,), 0.2, generator, slice_units=999)
    assert torch.equal(whole, sliced) and torch.equal(after, generator.get_state())


def test_where_equality_is_not_promised_it_is_pytorchs_dropout() -> None:
    x = torch.randn(6, 8, 5).transpose(0, 2)  # not contiguous: draw order would differ
    assert not applies(x, 0.1) and not applies(x.contiguous(), 1.0) and not applies(torch.ones(3), 0.0)
    (y, g, s), (y2, g2, s2) = _both(x, 0.1)
    assert torch.equal(y, y2) and torch.equal(g, g2) and torch.equal(s, s2)
    ones = torch.ones(4, 4)
    assert torch.equal(same_dropout(ones, 1.0), torch.zeros(4, 4))  # p = 1: everything dropped, as F.dropout
    assert same_dropout(ones, 0.1, training=False) is ones and same_dropout(ones, 0.0) is ones


def test_the_module_swaps_in_place_and_is_the_identity_in_eval() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2), nn.Sequential(nn.Dropout(0.3), nn.ReLU()),
                          nn.Dropout(0.1, inplace=True))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert use_same_dropout(model) == 3
    assert [type(m) for m in model.modules()].count(SameDropout) == 3
    assert model[1].p == 0.2 and model[2][0].p == 0.3 and model[3].inplace
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # checkpoints unchanged
    x = torch.randn(5, 4)
    model.eval()
    assert torch.equal(model(x), nn.functional.relu(model[0](x)))
    assert use_same_dropout(model) == 0  # already swapped


@needs_generic_bernoulli
def test_a_swapped_model_trains_as_the_plain_one() -> None:
    """A few optimiser steps with masks in every layer: the same weights to the bit."""
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(16, 32), nn.Dropout(0.1), nn.GELU(), nn.Linear(32, 16), nn.Dropout(0.25))
    swapped = copy.deepcopy(plain)
    use_same_dropout(swapped)
    x = torch.randn(64, 16)
    for model in (plain, swapped):
        torch.manual_seed(5)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(3):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model(x).float().pow(2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
    for a, b in zip(plain.parameters(), swapped.parameters(), strict=True):
        assert torch.equal(a, b)
