"""One check shared by the tests of exact shortcuts (models/first_token.py, models/unpadding.py)."""

from __future__ import annotations

import torch
from torch import nn


def assert_same_gradients(model: nn.Module, plain: nn.Module, rtol: float, atol: float) -> None:
    """Every parameter's gradient in ``model`` equals ``plain``'s up to rounding, ``atol`` relative to
    the largest entry of the plain gradient; parameters that took no part stay without one on both sides.

    The key projection's bias is skipped: it adds one constant to all of a query's scores, so its
    true gradient is 0 and both sides hold rounding noise alone.
    """
    grads = dict(plain.named_parameters())
    for name, p in model.named_parameters():
        if grads[name].grad is None:
            assert p.grad is None, name
            continue
        if name.endswith("attention.self.key.bias"):
            continue
        scale = grads[name].grad.abs().max().item()
        torch.testing.assert_close(p.grad, grads[name].grad, rtol=rtol, atol=atol * max(scale, 1e-3), msg=name)
