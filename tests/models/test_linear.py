"""Linear layers through another library (oneDNN: models/linear.py, OpenBLAS: models/openblas.py):
F.linear's values and gradients up to rounding, and only where they apply."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xstilts.models import linear, openblas

LIBRARIES = [
    pytest.param(linear, id="oneDNN",
                 marks=pytest.mark.skipif(not linear.available(), reason="this PyTorch has no oneDNN linear operator")),
    pytest.param(openblas, id="OpenBLAS",
                 marks=pytest.mark.skipif(not openblas.available(), reason="the OpenBLAS kernel is not built here")),
]
LAYERS = {linear: linear.OneDNNLinear, openblas: openblas.OpenBLASLinear}


@pytest.fixture(params=[1, 2], ids=["1 thread", "2 threads"])
def threads(request):
    """A product's rows may be split over PyTorch's threads: both ways must compute F.linear."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def _grads(fn, x, w, b, grad_out):
    x, w = x.detach().clone().requires_grad_(x.requires_grad), w.detach().clone().requires_grad_(w.requires_grad)
    b = None if b is None else b.detach().clone().requires_grad_(True)
    y = fn(x, w, b)
    y.backward(grad_out)
    return y.detach(), x.grad, w.grad, None if b is None else b.grad


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("shape", [(1, 24), (7, 24), (3, 11, 24), (2, 3, 65, 24), (300, 24)])
@pytest.mark.parametrize("bias", [True, False])
def test_values_and_gradients_equal_f_linear_up_to_rounding(library, shape, bias, threads) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, requires_grad=True)
    w = torch.randn(40, 24, generator=g, requires_grad=True)
    b = torch.randn(40, generator=g) if bias else None
    grad_out = torch.randn(*shape[:-1], 40, generator=g)
    ours = _grads(library.linear, x, w, b, grad_out)
    ref = _grads(F.linear, x, w, b, grad_out)
    assert ours[0].shape == ref[0].shape
    for a, r in zip(ours, ref, strict=True):
        if r is None:
            assert a is None
        else:  # a sum of hundreds of products near zero: tolerance on the tensor's scale
            torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-6 * float(r.abs().max()))


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_transposed_input_and_a_frozen_weight(library) -> None:
    x = torch.randn(24, 6).t().requires_grad_()  # not contiguous
    w = torch.randn(5, 24)  # no gradient wanted
    y = library.linear(x, w)
    y.sum().backward()
    torch.testing.assert_close(y, F.linear(x, w), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, torch.ones(6, 5) @ w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("library", LIBRARIES)
def test_autocast_and_other_dtypes_fall_back_to_f_linear_exactly(library) -> None:
    x, w, b = torch.randn(4, 8), torch.randn(3, 8), torch.randn(3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, ref = library.linear(x, w, b), F.linear(x, w, b)
    assert ours.dtype == torch.bfloat16 and torch.equal(ours, ref)
    xd, wd = x.double(), w.double()
    assert torch.equal(library.linear(xd, wd), F.linear(xd, wd))


@pytest.mark.parametrize("library", LIBRARIES)
def test_install_swaps_plain_linear_layers_only_and_keeps_the_state_dict(library) -> None:
    class Adapter(nn.Linear):
        pass

    layer = LAYERS[library]
    other = openblas if library is linear else linear
    model = nn.Sequential(nn.Linear(8, 6), nn.GELU(), Adapter(6, 6), nn.Linear(6, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert library.install(model) == 2
    assert type(model[0]) is layer and type(model[2]) is Adapter
    assert library.install(model) == 2 and other.install(model) == 0  # a second call, or library, changes nothing
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    twin = copy.deepcopy(model)
    assert type(twin[0]) is layer
    x = torch.randn(5, 8)
    with torch.no_grad():
        torch.testing.assert_close(twin(x), model(x))
        model[0].weight.add_(1.0)  # the copy's forward uses its own weights, not the original's
        assert not torch.allclose(twin(x), model(x))


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_model_trains_the_same_up_to_rounding(library, threads) -> None:
    torch.manual_seed(3)
    plain = nn.Sequential(nn.Linear(16, 96), nn.GELU(), nn.Linear(96, 4))
    swapped = copy.deepcopy(plain)
    library.install(swapped)
    x, y = torch.randn(200, 16), torch.randint(0, 4, (200,))
    for model in (plain, swapped):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(20):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    for a, b in zip(plain.parameters(), swapped.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("library", LIBRARIES)
def test_the_availability_check_leaves_the_random_stream_alone(library) -> None:
    library.available.cache_clear()
    torch.manual_seed(11)
    before = torch.get_rng_state()
    assert library.available()
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize("capability, amd, auto", [("AVX512", True, True), ("AVX512_BF16", True, True),
                                                   ("AVX512", False, False), ("AVX2", True, False),
                                                   ("DEFAULT", True, False), ("SVE256", False, False)])
def test_auto_takes_onednn_on_amd_avx512_cpus_only_and_explicit_settings_win(monkeypatch, capability, amd,
                                                                             auto) -> None:
    """oneDNN's fp32 products were faster on an AMD Zen 4, MKL's on an Intel Xeon (models/linear.py)."""
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(linear, "amd_cpu", lambda: amd)
    assert linear.wanted("auto") is auto
    assert linear.wanted(True) is True and linear.wanted(False) is False
