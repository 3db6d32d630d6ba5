"""OpenBLAS linear layers beyond what tests/models/test_linear.py checks of both libraries: the bias
never written, odd layouts, evaluation workers' thread counts, and where "auto" takes it."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F

from xstilts.models import openblas

pytestmark = pytest.mark.skipif(not openblas.available(), reason="the OpenBLAS kernel is not built here")


def test_the_bias_is_read_not_written() -> None:
    """A one-row product starts from the bias: it must be a copy (an expand of one row is the bias)."""
    x, w, b = torch.randn(1, 8), torch.randn(3, 8), torch.randn(3)
    before = b.clone()
    for _ in range(3):
        torch.testing.assert_close(openblas.linear(x, w, b), F.linear(x, w, b), rtol=1e-5, atol=1e-5)
    assert torch.equal(b, before)


def test_odd_layouts_are_read_or_copied() -> None:
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


def test_auto_is_on_only_for_amd_cpus_without_avx512_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    assert openblas.wanted(True) and not openblas.wanted(False)
    for avx512, amd, want in ((False, True, True), (True, True, False), (False, False, False), (True, False, False)):
        monkeypatch.setattr(openblas, "on_avx512", lambda setting, a=avx512: a)
        monkeypatch.setattr(openblas, "amd_cpu", lambda a=amd: a)
        assert openblas.wanted("auto") is want


def test_a_one_thread_worker_stays_at_one_thread() -> None:
    """Evaluation workers run at one intra-op thread in a process of more (evaluation/predict.py): a
    product there must use one thread and leave the worker's count alone."""
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
