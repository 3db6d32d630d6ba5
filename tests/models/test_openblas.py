"""OpenBLAS linear layers: F.linear's values and gradients up to rounding, on every thread count,
and only where they apply."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xstilts.models import linear as onednn
from xstilts.models import openblas

pytestmark = pytest.mark.skipif(not openblas.available(), reason="the OpenBLAS kernel is not built here")


@pytest.fixture(params=[1, 2], ids=["1 thread", "2 threads"])
def threads(request):
    """Each product's rows are split over PyTorch's threads: both ways must compute the same."""
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


@pytest.mark.parametrize("shape", [(1, 24), (7, 24), (3, 11, 24), (2, 3, 65, 24), (300, 24)])
@pytest.mark.parametrize("bias", [True, False])
def test_values_and_gradients_equal_f_linear_up_to_rounding(shape, bias, threads) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, requires_grad=True)
    w = torch.randn(40, 24, generator=g, requires_grad=True)
    b = torch.randn(40, generator=g) if bias else None
    grad_out = torch.randn(*shape[:-1], 40, generator=g)
    ours = _grads(openblas.linear, x, w, b, grad_out)
    ref = _grads(F.linear, x, w, b, grad_out)
    assert ours[0].shape == ref[0].shape
    for a, r in zip(ours, ref, strict=True):
        if r is None:
            assert a is None
        else:  # a sum of hundreds of products near zero: tolerance on the tensor's scale
            torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-6 * float(r.abs().max()))


def test_the_bias_is_read_not_written() -> None:
    """A one-row product starts from the bias: it must be a copy (an expand of one row is the bias)."""
    x, w, b = torch.randn(1, 8), torch.randn(3, 8), torch.randn(3)
    before = b.clone()
    for _ in range(3):
        torch.testing.assert_close(openblas.linear(x, w, b), F.linear(x, w, b), rtol=1e-5, atol=1e-5)
    assert torch.equal(b, before)


def test_odd_layouts_are_read_or_copied(threads) -> None:
    w = torch.randn(5, 24)  # no gradient wanted
    x = torch.randn(24, 6).t().requires_grad_()  # a transposed view
    y = openblas.linear(x, w)
    y.backward(torch.ones(1, 5).expand(6, 5))  # a gradient with a zero row stride: copied, not misread
    torch.testing.assert_close(y, F.linear(x, w), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, torch.ones(6, 5) @ w, rtol=1e-5, atol=1e-5)
    strided = torch.randn(6, 48)[:, ::2]  # no unit stride anywhere
    torch.testing.assert_close(openblas.linear(strided, w), F.linear(strided, w), rtol=1e-5, atol=1e-5)
    empty = torch.randn(0, 24)
    assert openblas.linear(empty, w).shape == (0, 5)


def test_autocast_and_other_dtypes_fall_back_to_f_linear_exactly() -> None:
    x, w, b = torch.randn(4, 8), torch.randn(3, 8), torch.randn(3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, ref = openblas.linear(x, w, b), F.linear(x, w, b)
    assert ours.dtype == torch.bfloat16 and torch.equal(ours, ref)
    xd, wd = x.double(), w.double()
    assert torch.equal(openblas.linear(xd, wd), F.linear(xd, wd))


def test_install_swaps_plain_linear_layers_only_and_keeps_the_state_dict() -> None:
    class Adapter(nn.Linear):
        pass

    model = nn.Sequential(nn.Linear(8, 6), nn.GELU(), Adapter(6, 6), nn.Linear(6, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert openblas.install(model) == 2
    assert type(model[0]) is openblas.OpenBLASLinear and type(model[2]) is Adapter
    assert openblas.install(model) == 2 and onednn.install(model) == 0  # oneDNN leaves them alone
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    twin = copy.deepcopy(model)
    assert type(twin[0]) is openblas.OpenBLASLinear
    x = torch.randn(5, 8)
    with torch.no_grad():
        torch.testing.assert_close(twin(x), model(x))
        model[0].weight.add_(1.0)  # the copy's forward uses its own weights, not the original's
        assert not torch.allclose(twin(x), model(x))


def test_a_model_trains_the_same_up_to_rounding(threads) -> None:
    torch.manual_seed(3)
    plain = nn.Sequential(nn.Linear(16, 96), nn.GELU(), nn.Linear(96, 4))
    swapped = copy.deepcopy(plain)
    openblas.install(swapped)
    x, y = torch.randn(200, 16), torch.randint(0, 4, (200,))
    for model in (plain, swapped):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(20):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    for a, b in zip(plain.parameters(), swapped.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_the_availability_check_leaves_the_random_stream_alone() -> None:
    openblas.available.cache_clear()
    torch.manual_seed(11)
    before = torch.get_rng_state()
    assert openblas.available()
    assert torch.equal(torch.get_rng_state(), before)


def test_auto_is_on_only_for_amd_cpus_without_avx512_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    assert openblas.wanted(True) and not openblas.wanted(False)
    for avx512, amd, want in ((False, True, True), (True, True, False), (False, False, False), (True, False, False)):
        monkeypatch.setattr(openblas, "on_avx512", lambda setting, a=avx512: a)
        monkeypatch.setattr(openblas, "_amd", lambda a=amd: a)
        assert openblas.wanted("auto") is want


def test_a_one_thread_worker_stays_at_one_thread() -> None:
    """Evaluation workers run at one intra-op thread in a process of more (evaluation/predict.py): a
    product there must use one thread and leave the worker's count alone."""
    import threading

    before = torch.get_num_threads()
    seen: dict[str, int] = {}
    started, restored = threading.Barrier(2), threading.Barrier(2)

    def worker() -> None:
        seen["first"] = torch.get_num_threads()  # takes the count of 1 set below
        started.wait()
        restored.wait()
        x, w = torch.randn(700, 64), torch.randn(32, 64)
        torch.testing.assert_close(openblas.linear(x, w), F.linear(x, w), rtol=1e-5, atol=1e-5)
        seen["after"] = torch.get_num_threads()

    try:
        torch.set_num_threads(1)
        thread = threading.Thread(target=worker)
        thread.start()
        started.wait()
        torch.set_num_threads(2)
        restored.wait()
        thread.join()
        assert seen == {"first": 1, "after": 1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
