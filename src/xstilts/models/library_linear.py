"""What the linear layers that another library computes share (oneDNN: models/linear.py, OpenBLAS:
models/openblas.py): which products they take, how a product of any rank becomes a 2-D one, and how
an encoder's ``nn.Linear`` layers get the class that routes them.

Kept apart so that neither library's module imports the other's for these.
"""

from __future__ import annotations

import torch
from torch import nn


def takes(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether another library computes this product: fp32 on a CPU, outside autocast and compilation."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and x.numel() > 0 and weight.device.type == "cpu" and not torch.is_autocast_enabled("cpu")
            and not torch.compiler.is_compiling())


def through(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
            function: type[torch.autograd.Function], product) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` for an ``x`` of any rank by a library's 2-D ``product(x, weight,
    bias)``, or by its autograd ``function`` where a gradient is wanted (models/linear.py, models/openblas.py)."""
    flat = x.reshape(-1, x.shape[-1])
    if not flat.is_contiguous():
        flat = flat.contiguous()
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                    or (bias is not None and bias.requires_grad)):
        out = function.apply(flat, weight, bias)
    else:
        out = product(flat, weight, bias)
    return out.view(*x.shape[:-1], weight.shape[0])


def give_class(module: nn.Module, cls: type[nn.Linear]) -> int:
    """Give every plain ``nn.Linear`` in ``module`` the class ``cls`` (same parameters and state-dict
    keys, still an ``nn.Linear``; a class rather than a patched method so a deep copy stays
    consistent); returns how many have it. Subclasses (quantised or adapter layers, another
    library's) keep their own forward."""
    count = 0
    for m in module.modules():
        if type(m) is nn.Linear:
            m.__class__ = cls
        count += type(m) is cls
    return count
