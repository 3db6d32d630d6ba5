"""Sentence-level heads read one position of the last layer: compute only that position there.

Why: classification and multiple-choice heads use the last layer's first token (``<s>`` / ``[CLS]``)
and nothing else, yet an encoder computes the last layer for every token. In that layer only the
keys and values need every token; the query, the attention output, the feed-forward block and
both layer norms are needed for the first token alone. For a BERT/XLM-R layer that is 4·d² of its
24·d² multiply-adds per token, so a 12-layer encoder does about 7 % less work per training step
and per evaluation batch of sentence-level tasks (benchmarks/RESULTS.md measures it).

The same arithmetic, restricted: outputs and gradients equal the full layer's first row up to
floating-point rounding (a matrix product over fewer rows may round differently). Dropout decides
what a training step may skip, in one of two ways:

- ``"same-draws"`` (``runtime.first_token_train``, default on): the layer draws every dropout mask
  the full layer draws -- same shapes, same order, same functions -- and applies their first
  position. The generator ends where the full layer leaves it, so the head's dropout and every later
  step draw what they would have: results equal the full layer's up to rounding (like another
  thread count), and the switch is not in run ids. Only the arithmetic is skipped; the draws, a
  large share of a step on CPUs, stay. Where the draws cannot be matched (a GPU's fused attention
  dropout, an attention implementation other than SDPA / eager / ``xstilts_sdpa``) the full layer
  runs.
- ``"own-draws"`` (``runtime.first_token_only``, opt-in): masks for the first position alone, so the
  draws are skipped too, and every later draw of the generator differs: a run trains like one with
  another seed (measured: XNLI dev accuracy after 20 steps 43.3 vs 41.7). In run ids.

Evaluation has no dropout: there the shortcut changes nothing but rounding (like another evaluation
batch size), so ``runtime.first_token_eval`` (default on, not in run ids) uses it for prediction.

How: :func:`install` (called by :func:`xstilts.training.speed.prepare_encoder`) gives the last layer
an instance-level ``forward`` that is the ordinary one unless a head asks otherwise with
``with first_token_only(encoder):`` -- and, in training mode, unless installed for training
(``train`` not ``"no"``). Token-level heads (tagging, span QA, MLM) never ask, so one
encoder can serve both kinds in a multi-task phase. Parameters and state-dict keys are untouched.
Layers that are not BERT-shaped encoder layers, or attention masks that are not 4-D (flash
kernels' varlen masks), fall back to the full layer.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from xstilts.models import draws
from xstilts.models.dropout import ATTENTION_NAME, drawn_mask, fast_dropout

_FLAG = "_xstilts_first_token"  # marks an installed layer
_TRAIN = "_xstilts_first_token_train"  # its training mode: one of TRAIN_MODES
_EVAL = "_xstilts_first_token_eval"  # whether evaluation mode takes the shortcut
TRAIN_MODES = ("no", "same-draws", "own-draws")
_REDRAWN = ("sdpa", "eager", ATTENTION_NAME)  # attention implementations whose draws "same-draws" repeats
# ids of the layers asked for the first token, per thread: evaluation predicts batches on several
# threads at once (evaluation/predict.py), and one thread leaving the block must not switch the
# shortcut off under another
_ASKED = threading.local()


def _asked() -> set[int]:
    if not hasattr(_ASKED, "layers"):
        _ASKED.layers = set()
    return _ASKED.layers


def _last_layer(encoder: nn.Module) -> nn.Module | None:
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        return None
    return layers[-1]


def bert_shaped(layer: nn.Module) -> bool:
    attention = getattr(layer, "attention", None)
    self_attn = getattr(attention, "self", None)
    return (self_attn is not None and all(hasattr(self_attn, a) for a in
                                          ("query", "key", "value", "attention_head_size", "scaling", "config"))
            and hasattr(attention, "output") and hasattr(layer, "intermediate") and hasattr(layer, "output")
            and not getattr(layer, "is_decoder", False) and not getattr(layer, "add_cross_attention", False)
            and not getattr(layer, "chunk_size_feed_forward", 0))


def install(encoder: nn.Module, train: str = "own-draws", evaluation: bool = True) -> bool:
    """Make the last layer able to compute the first token only; False where the model is not BERT-shaped.

    ``train``: what a training-mode forward does when asked (module docstring): ``"no"`` -- the full
    layer, so the shortcut serves evaluation only; ``"same-draws"`` -- the first token, drawing the
    full layer's dropout masks; ``"own-draws"`` -- the first token with its own masks.
    ``evaluation``: whether an evaluation-mode forward takes the shortcut. A second call sets both anew.
    """
    if train not in TRAIN_MODES:
        raise ValueError(f"train must be one of {TRAIN_MODES}, got {train!r}")
    layer = _last_layer(encoder)
    if layer is None or not bert_shaped(layer):
        return False
    if _FLAG not in vars(layer):
        setattr(layer, _FLAG, True)
        layer.forward = types.MethodType(_forward, layer)
    setattr(layer, _TRAIN, train)
    setattr(layer, _EVAL, evaluation)
    return True


def installed(encoder: nn.Module) -> bool:
    layer = _last_layer(encoder)
    return layer is not None and _FLAG in vars(layer)


@contextmanager
def first_token_only(encoder: nn.Module) -> Iterator[None]:
    """Within this block the encoder's last hidden state has one position, the first token's.

    A no-op where :func:`install` was not applied: then the full sequence comes back, and a caller
    that takes ``[:, 0]`` gets the same row either way.
    """
    layer = _last_layer(encoder)
    if layer is None or _FLAG not in vars(layer):
        yield
        return
    asked = _asked()
    already = id(layer) in asked
    asked.add(id(layer))
    try:
        yield
    finally:
        if not already:
            asked.discard(id(layer))


def _applies(layer: nn.Module) -> bool:
    """An installed layer computes the first token alone: asked on this thread, and installed for
    the mode (training or evaluation) the layer is in."""
    if id(layer) not in _asked():
        return False
    return getattr(layer, _TRAIN) != "no" if layer.training else getattr(layer, _EVAL)


def _can_redraw(layer: nn.Module, hidden_states: torch.Tensor) -> bool:
    """Whether "same-draws" can repeat the full layer's mask draws here (module docstring)."""
    return (hidden_states.device.type == "cpu"
            and layer.attention.self.config._attn_implementation in _REDRAWN
            and all(hasattr(m, a) for m in (layer.attention.output, layer.output)
                    for a in ("dense", "dropout", "LayerNorm")))


def applies_to(layer: nn.Module) -> bool:
    """Whether ``layer``, if installed, would compute the first token alone in a forward pass now."""
    return _FLAG in vars(layer) and _applies(layer)


def in_effect(encoder: nn.Module) -> bool:
    """Whether a forward pass now would compute the last layer for the first token alone."""
    layer = _last_layer(encoder)
    return layer is not None and applies_to(layer)


def _forward(self: nn.Module, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
             *args: Any, **kwargs: Any) -> torch.Tensor:
    full = type(self).forward
    if not _applies(self) or (attention_mask is not None and attention_mask.dim() != 4):
        return full(self, hidden_states, attention_mask, *args, **kwargs)
    same_draws = self.training and getattr(self, _TRAIN) == "same-draws"
    if same_draws and not _can_redraw(self, hidden_states):
        return full(self, hidden_states, attention_mask, *args, **kwargs)
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.bert.modeling_bert import eager_attention_forward

    attn = self.attention.self
    batch, length = hidden_states.shape[:2]
    first = hidden_states[:, :1]
    heads = (-1, attn.attention_head_size)
    query = attn.query(first).view(batch, 1, *heads).transpose(1, 2)
    key = attn.key(hidden_states).view(batch, length, *heads).transpose(1, 2)
    value = attn.value(hidden_states).view(batch, length, *heads).transpose(1, 2)
    mask = attention_mask[:, :, :1, :] if attention_mask is not None else None
    if same_draws:
        with draws.held(self):  # its attention mask is drawn here, outside the attention module
            context = _attention_same_draws(attn, query, key, value, mask, length)
        attended = _output_same_draws(self.attention.output, context.reshape(batch, 1, -1), first, length)
        return _output_same_draws(self.output, self.intermediate(attended), attended, length)
    interface = ALL_ATTENTION_FUNCTIONS.get_interface(attn.config._attn_implementation, eager_attention_forward)
    context, _ = interface(attn, query, key, value, mask, dropout=attn.dropout.p if attn.training else 0.0,
                           scaling=attn.scaling)
    attended = self.attention.output(context.reshape(batch, 1, -1).contiguous(), first)
    return self.output(self.intermediate(attended), attended)


def _attention_same_draws(attn: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                          mask: torch.Tensor | None, length: int) -> torch.Tensor:
    """The first query's attention, with the first query row of the full probabilities' dropout mask.

    SDPA on a CPU drops with ``torch.nn.functional.dropout`` on float32 probabilities (its math path,
    the one it takes whenever ``dropout_p > 0``), eager attention in the query's dtype, and
    ``xstilts_sdpa`` with :func:`~xstilts.models.dropout.fast_dropout`. Returns ``[batch, 1, heads, head_dim]``.
    """
    p = attn.dropout.p
    implementation = attn.config._attn_implementation
    scores = torch.matmul(query, key.transpose(-1, -2)).float() * attn.scaling
    if mask is not None:
        if mask.dtype == torch.bool:  # True = attend (SDPA's convention)
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + mask
    probs = torch.softmax(scores, dim=-1)
    if p > 0:
        full = (*query.shape[:2], length, length)
        if implementation == ATTENTION_NAME:
            drop = lambda t: fast_dropout(t, p, True)  # noqa: E731
        else:
            drop = lambda t: torch.nn.functional.dropout(t, p, True)  # noqa: E731
        dtype_of = query if implementation == "eager" else probs
        probs = probs * drawn_mask(drop, full, dtype_of).narrow(2, 0, 1)  # the first query row
    return torch.matmul(probs.to(value.dtype), value).transpose(1, 2)


def _output_same_draws(block: nn.Module, x: torch.Tensor, residual: torch.Tensor, length: int) -> torch.Tensor:
    """A BERT output block (dense, dropout, residual LayerNorm) for the first position, with the first
    position of the mask its dropout draws for all ``length`` positions."""
    h = block.dense(x)
    h = h * drawn_mask(block.dropout, (h.shape[0], length, h.shape[-1]), h).narrow(1, 0, 1)
    return block.LayerNorm(h + residual)
