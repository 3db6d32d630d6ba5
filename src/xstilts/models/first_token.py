"""Sentence-level heads read one position of the last layer: compute only that position there.

Why: classification and multiple-choice heads use the last layer's first token (``<s>`` / ``[CLS]``)
and nothing else, yet an encoder computes the last layer for every token. In that layer only the
keys and values need every token; the query, the attention output, the feed-forward block and
both layer norms are needed for the first token alone. For a BERT/XLM-R layer that is 4·d² of its
24·d² multiply-adds per token, so a 12-layer encoder does about 7 % less work per training step
and per evaluation batch of sentence-level tasks (benchmarks/RESULTS.md measures it).

The same arithmetic, restricted: outputs and gradients equal the full layer's first row up to
floating-point rounding (a matrix product over fewer rows may round differently). In training the
last layer's dropout then draws masks for one position instead of all, so every later draw of the
generator differs: a run trains like one with another seed (measured: XNLI dev accuracy after 20
steps 43.3 vs 41.7). So ``runtime.first_token_only`` is part of run ids, and off by default.
Evaluation has no dropout: there the shortcut changes nothing but rounding (like another evaluation
batch size), so ``runtime.first_token_eval`` (default on, not in run ids) uses it for prediction alone.

How: :func:`install` (called by :func:`xstilts.training.speed.prepare_encoder`) gives the last layer
an instance-level ``forward`` that is the ordinary one unless a head asks otherwise with
``with first_token_only(encoder):`` -- and, when installed for evaluation only (``train=False``),
unless the layer is in training mode. Token-level heads (tagging, span QA, MLM) never ask, so one
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

_FLAG = "_xstilts_first_token"  # marks an installed layer
_IN_TRAINING = "_xstilts_first_token_in_training"
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


def _bert_shaped(layer: nn.Module) -> bool:
    attention = getattr(layer, "attention", None)
    self_attn = getattr(attention, "self", None)
    return (self_attn is not None and all(hasattr(self_attn, a) for a in
                                          ("query", "key", "value", "attention_head_size", "scaling", "config"))
            and hasattr(attention, "output") and hasattr(layer, "intermediate") and hasattr(layer, "output")
            and not getattr(layer, "is_decoder", False) and not getattr(layer, "add_cross_attention", False)
            and not getattr(layer, "chunk_size_feed_forward", 0))


def install(encoder: nn.Module, train: bool = True) -> bool:
    """Make the last layer able to compute the first token only; False where the model is not BERT-shaped.

    ``train=False``: only in evaluation mode (``encoder.eval()``), where it changes rounding alone;
    a training step computes the full layer, so its dropout draws, and results, stay the same.
    A second call sets ``train`` anew.
    """
    layer = _last_layer(encoder)
    if layer is None or not _bert_shaped(layer):
        return False
    if _FLAG not in vars(layer):
        setattr(layer, _FLAG, True)
        layer.forward = types.MethodType(_forward, layer)
    setattr(layer, _IN_TRAINING, train)
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
    """An installed layer computes the first token alone: asked on this thread, and in evaluation
    mode or installed for training too."""
    return id(layer) in _asked() and (not layer.training or getattr(layer, _IN_TRAINING, True))


def in_effect(encoder: nn.Module) -> bool:
    """Whether a forward pass now would compute the last layer for the first token alone."""
    layer = _last_layer(encoder)
    return layer is not None and _FLAG in vars(layer) and _applies(layer)


def _forward(self: nn.Module, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
             *args: Any, **kwargs: Any) -> torch.Tensor:
    full = type(self).forward
    if not _applies(self) or (attention_mask is not None and attention_mask.dim() != 4):
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
    interface = ALL_ATTENTION_FUNCTIONS.get_interface(attn.config._attn_implementation, eager_attention_forward)
    context, _ = interface(attn, query, key, value, mask, dropout=attn.dropout.p if attn.training else 0.0,
                           scaling=attn.scaling)
    attended = self.attention.output(context.reshape(batch, 1, -1).contiguous(), first)
    return self.output(self.intermediate(attended), attended)
