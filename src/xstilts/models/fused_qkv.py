"""Query, key and value projections as one matrix product (``runtime.fuse_qkv``).

Why: a BERT/XLM-R self-attention block projects the same input three times, with three
384 x 384 (1,024 x 1,024 for XLM-R large) linear layers. As one product with the three weight
matrices stacked (384 -> 1,152) a step launches one operator instead of three in the forward pass,
one input-gradient product instead of three plus the two additions that sum them, and one weight
gradient instead of three; under bf16 autocast the input is cast to bf16 once instead of three times.
Fewer, larger operators matter most where each one's dispatch dominates (a GPU at small batches);
on the 2-core CPUs of ``benchmarks/RESULTS.md`` the step gains a couple of per cent.

Equal up to float rounding: each output is the same dot product, computed inside a wider matrix
product (another blocking, like another thread count); the random stream is untouched. So the
switch is not in run ids.

How: :func:`install` gives each self-attention module that passes a check an instance-level
``forward`` that stacks the three layers' weights and biases on every call (they stay three
separate parameters: optimizer, state-dict keys, checkpoints and the first-token shortcut of
``models/first_token.py`` see no change; autograd hands each its slice of the stacked gradient).
The check runs the whole encoder once on a short random batch in eval mode without and with the
fused forward: a module whose class computes attention some other way (relative positions, a
cache, another signature) would give other outputs, and then nothing is installed.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xstilts.models import linear as onednn
from xstilts.models import openblas

_FLAG = "_xstilts_fused_qkv"  # set on a module whose forward is the fused one
_NEEDS = ("query", "key", "value", "attention_head_size", "scaling", "config", "dropout")


def candidates(encoder: nn.Module) -> list[nn.Module]:
    """Self-attention modules shaped like transformers' BERT ones: three same-shaped ``nn.Linear``
    projections named ``query``/``key``/``value`` and the attributes its forward reads."""
    found = []
    for m in encoder.modules():
        if not all(hasattr(m, a) for a in _NEEDS) or getattr(m, "is_decoder", False):
            continue
        q, k, v = m.query, m.key, m.value
        if all(isinstance(p, nn.Linear) and p.bias is not None for p in (q, k, v)) and \
                q.weight.shape == k.weight.shape == v.weight.shape:
            found.append(m)
    return found


def fused(module: nn.Module) -> bool:
    """Whether ``module`` computes the fused projection (:func:`install` passed it)."""
    return bool(vars(module).get(_FLAG, False))


def project(module: nn.Module, hidden_states: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Query, key and value of ``hidden_states`` (``[..., hidden]`` to three ``[..., heads·d]``) as one
    product of the stacked weights; also for models/unpadding.py's layers on real tokens."""
    q, k, v = module.query, module.key, module.value
    weight = torch.cat([q.weight, k.weight, v.weight])
    bias = torch.cat([q.bias, k.bias, v.bias])
    linear = (onednn.linear if isinstance(q, onednn.OneDNNLinear)
              else openblas.linear if isinstance(q, openblas.OpenBLASLinear) else F.linear)
    return linear(hidden_states, weight, bias).chunk(3, dim=-1)


def _forward(self: nn.Module, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
             cache: Any = None, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    if cache is not None:  # a decoder's key/value cache: the class's own forward knows it
        return type(self).forward(self, hidden_states, attention_mask, cache, **kwargs)
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    shape = hidden_states.shape[:-1]
    query, key, value = (t.view(*shape, -1, self.attention_head_size).transpose(1, 2)
                         for t in project(self, hidden_states))
    eager = getattr(sys.modules[type(self).__module__], "eager_attention_forward", None)
    interface = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager)
    out, weights = interface(self, query, key, value, attention_mask,
                             dropout=self.dropout.p if self.training else 0.0, scaling=self.scaling, **kwargs)
    return out.reshape(*shape, -1).contiguous(), weights


def _patch(modules: list[nn.Module]) -> None:
    for m in modules:
        m.forward = types.MethodType(_forward, m)
        setattr(m, _FLAG, True)


def _unpatch(modules: list[nn.Module]) -> None:
    for m in modules:
        vars(m).pop("forward", None)
        vars(m).pop(_FLAG, None)


def installed(encoder: nn.Module) -> int:
    """How many of ``encoder``'s modules compute the fused projection."""
    return sum(1 for m in encoder.modules() if fused(m))


def _check_batch(encoder: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Two short rows of token ids (the second padded) that every vocabulary holds, drawn from a
    generator of its own so the check leaves the default random stream where it was."""
    g = torch.Generator().manual_seed(0)
    vocab = encoder.get_input_embeddings().num_embeddings
    ids = torch.randint(0, min(vocab, 1000), (2, 7), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    device = next(encoder.parameters()).device
    return ids.to(device), mask.to(device)


def install(encoder: nn.Module) -> int:
    """Fuse the projections of every candidate module of ``encoder`` whose outputs pass the check;
    returns how many are fused (0: the encoder's attention is not of this shape, nothing changed).

    Call it before other wrappers of the vocabulary (trimming): the check feeds token ids the
    run's data may not have."""
    modules = [m for m in candidates(encoder) if not fused(m)]
    if not modules or not hasattr(encoder, "get_input_embeddings"):
        return installed(encoder)
    was_training = encoder.training
    encoder.eval()
    ids, mask = _check_batch(encoder)
    try:
        with torch.no_grad():
            reference = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            _patch(modules)
            try:
                patched = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
                same = bool(torch.allclose(patched, reference, rtol=1e-4, atol=1e-5))
            except (TypeError, ValueError, RuntimeError, IndexError, AttributeError):
                same = False
            if not same:
                _unpatch(modules)
    finally:
        encoder.train(was_training)
    return installed(encoder)
