"""Unpadding (``runtime.unpad``): the encoder's linear layers, norms and activations see real tokens only.

Why: a padded batch of B sequences padded to length L holds B·L positions, and every linear layer,
layer norm, GELU and dropout of every layer computes all of them, padding included -- yet only
attention needs the padded ``[batch, heads, length, length]`` layout. On a CPU those per-token
operators are nine tenths of a training step (benchmarks/profile_step.py), so the padding that
length buckets leave (13 % of the quickstart's PAN-X training positions, 6 % of its evaluation's)
costs about as much in time. Here each layer runs on ``[real tokens, hidden]``: the query, key and
value projections are spread into the padded layout for attention (zeros at padding, which the
attention mask hides anyway) and attention's output is gathered back, one copy each.

The same arithmetic on fewer rows: every real token's outputs and gradients equal the padded
encoder's up to floating-point rounding (a product over fewer rows may round differently), and the
dropout masks are the ones the padded encoder draws -- attention's are drawn on the same padded
shape, each hidden-state dropout draws its mask for all B·L positions (models/dropout.py's
``drawn_mask``: the module's own mask, the same generator state after) and keeps the real rows. So
results are equal up to rounding, like another thread count, and the switch is not in run ids. The
last hidden state comes back padded (zeros at padding, which no head reads). Where the first-token
shortcut (models/first_token.py) computes the last layer, that layer gets the padded states and runs
as before.

The gathers and scatters around attention cost a few per cent of a layer, so a batch with almost
no padding can be slower unpadded: ``runtime.unpad_min_padding`` (default 0.05; 0 unpads every padded
batch) sends batches with a smaller share of padding positions down the padded path. In whole
runs on the 2-core Zen 4 machine (benchmarks/RESULTS.md, thirty-fifth session) unpadding every padded
batch made XNLI's runs (2 % of positions padding) 3-7 % slower to evaluate and 2-4 % slower to train
in bf16, while PAN-X's (13 % padding in training, 6 % in evaluation) trained 7-10 % faster in fp32;
batches with at least 5 % padding hold 93 % of PAN-X's training padding and 83 % of its evaluation's,
and 8 % / 3 % of XNLI's batches.

In evaluation (eval mode, gradients off) with ``runtime.attention_kernel`` (by default where PyTorch
runs AVX-512 kernels) every batch runs unpadded, whatever its padding, and attention is computed on
the unpadded rows themselves by models/attention_kernel.py: no spreads or gathers around it, so the
threshold has nothing to save there. With ``runtime.attention_kernel_train`` (on by default, with the
kernel) training does the same, its backward pass the kernel's too, where the batch is right-padded
and the model's attention is SDPA or xstilts' fast-dropout attention: attention's dropout mask is
drawn for the padded ``[batch, heads, length, length]`` probabilities exactly as that attention draws
it (SDPA: PyTorch's dropout on fp32 probabilities), and the kernel reads its real rows. Otherwise
training takes the paths above.

Where it does not apply the encoder runs as before: a batch without padding (its attention mask is
then None) or with less than ``unpad_min_padding``, a mask that is not a key-padding mask (packed
rows' block diagonal), a model whose layers are not BERT-shaped, cross-attention or a cache, hooks on a layer or
its attention (how transformers returns ``output_hidden_states``, which retrieval reads), and devices
other than the CPU (untested there).
"""

from __future__ import annotations

import types
from typing import Any

import torch
from torch import nn

from xstilts.models import attention_kernel, draws, first_token, fused_qkv
from xstilts.models.dropout import ATTENTION_NAME, drawn_mask

_FLAG = "_xstilts_unpad"  # on an encoder stack whose forward is the unpadded one: its min_padding
_KERNEL = "_xstilts_unpad_kernel"  # ... and whether evaluation's attention may use models/attention_kernel.py
_TRAIN = "_xstilts_unpad_kernel_train"  # ... and training's too
# attention implementations whose training-time dropout the kernel reproduces: SDPA draws PyTorch's
# dropout on the fp32 [batch, heads, length, length] probabilities, xstilts' fast-dropout attention
# its own mask through the attention module's dropout (models/dropout.py)
_TRAINABLE = ("sdpa", ATTENTION_NAME)


def _stack(encoder: nn.Module) -> nn.Module | None:
    """The module holding ``layer`` (a BertModel's ``encoder``), or None."""
    stack = getattr(encoder, "encoder", None)
    layers = getattr(stack, "layer", None)
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        return None
    return stack


def install(encoder: nn.Module, min_padding: float = 0.0, kernel: bool = False, train_kernel: bool = False) -> int:
    """Give ``encoder``'s layer stack the unpadded forward, for batches with at least ``min_padding``
    of their positions padding; returns the number of layers (0: not BERT-shaped). ``kernel``: in
    evaluation (eval mode, no gradients) every batch runs unpadded with attention by
    models/attention_kernel.py where it is available, whatever its padding; ``train_kernel`` (with
    ``kernel``): in training too, where the model's attention drops out as the kernel can."""
    stack = _stack(encoder)
    if stack is None or not all(first_token.bert_shaped(layer) for layer in stack.layer):
        return 0
    if _FLAG not in vars(stack):
        stack.forward = types.MethodType(_forward, stack)
    setattr(stack, _FLAG, float(min_padding))
    setattr(stack, _KERNEL, bool(kernel))
    setattr(stack, _TRAIN, bool(kernel and train_kernel))
    return len(stack.layer)


def kernel_installed(encoder: nn.Module) -> bool:
    """Whether evaluation's attention runs by the kernel: asked for at install, and available here."""
    stack = _stack(encoder)
    return stack is not None and _kernel_on(stack)


def train_kernel_installed(encoder: nn.Module) -> bool:
    """Whether training's attention runs by the kernel too (asked for, available, a trainable dropout)."""
    stack = _stack(encoder)
    return stack is not None and _train_kernel_on(stack)


def _kernel_on(stack: nn.Module) -> bool:
    return bool(vars(stack).get(_KERNEL)) and attention_kernel.available()


def _train_kernel_on(stack: nn.Module) -> bool:
    config = stack.layer[0].attention.self.config
    return (bool(vars(stack).get(_TRAIN)) and _kernel_on(stack) and attention_kernel.trains()
            and getattr(config, "_attn_implementation", None) in _TRAINABLE)


def installed(encoder: nn.Module) -> bool:
    stack = _stack(encoder)
    return stack is not None and _FLAG in vars(stack)


def real_positions(mask: torch.Tensor | None, min_padding: float = 0.0) -> torch.Tensor | None:
    """Indices into ``batch × length`` of the real tokens, from a 4-D attention mask, or None where
    there is nothing worth unpadding: no mask, no padding or less than ``min_padding`` of the
    positions, or a mask that is not the same key-padding row for every query (a packed batch's block
    diagonal). Bool masks are SDPA's (True: attend), float ones additive (0: attend)."""
    keys = key_padding(mask)
    if keys is None:
        return None
    padding = keys.numel() - int(keys.sum())
    if padding == 0 or padding < min_padding * keys.numel():
        return None
    return keys.reshape(-1).nonzero().squeeze(1)


def key_padding(mask: torch.Tensor | None) -> torch.Tensor | None:
    """``[batch, length]``, True at real keys, from a 4-D key-padding mask; None for no mask or any
    other mask (a packed batch's block diagonal gives queries different rows)."""
    if mask is None or mask.dim() != 4 or mask.shape[1] != 1:
        return None
    keep = mask if mask.dtype == torch.bool else mask == 0
    first = keep[:, :, :1, :]  # the first query's row: a key-padding mask gives every query the same
    if not bool((keep == first).all()):
        return None
    return first.reshape(keep.shape[0], keep.shape[-1])


def _kernel_rows(self: nn.Module, mask: torch.Tensor | None, batch: int, length: int,
                 ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(real rows' indices, each sequence's real-token count) for attention by the kernel, whatever
    the padding, or None: the kernel not asked for (in training: for training) or not available, or a
    mask that is not a key-padding mask (in training: right padding, as the dropout mask is indexed
    by position)."""
    training = self.training or torch.is_grad_enabled()
    if not (_train_kernel_on(self) if training else _kernel_on(self)):
        return None
    if getattr(self.layer[0].attention.self.config, "is_decoder", False):  # causal without a mask
        return None
    if mask is None:  # no padding anywhere
        return torch.arange(batch * length), torch.full((batch,), length, dtype=torch.int64)
    keys = key_padding(mask)
    if keys is None:
        return None
    lengths = keys.sum(dim=1, dtype=torch.int64)
    if not bool((lengths > 0).all()):  # a row of padding alone: SDPA's answer for it is its own
        return None
    if training and not bool((keys == (torch.arange(length) < lengths[:, None])).all()):
        return None
    return keys.reshape(-1).nonzero().squeeze(1), lengths


def _hooked(layer: nn.Module) -> bool:
    """Whether something watches a layer's forward: transformers records ``output_hidden_states`` and
    ``output_attentions`` with hooks on the layer and attention modules, which unpadded layers do
    not call, and a user's hook expects the padded output."""
    attn = getattr(getattr(layer, "attention", None), "self", None)
    return any(hook not in draws.HOOKS  # the draw kernel's own hooks (models/draws.py) hold a mode only
               for m in (layer, attn) if m is not None
               for hook in (*m._forward_hooks.values(), *m._forward_pre_hooks.values()))


def _forward(self: nn.Module, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
             encoder_hidden_states: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> Any:
    full = type(self).forward
    index = lengths = None
    if (hidden_states.device.type == "cpu" and encoder_hidden_states is None
            and kwargs.get("encoder_attention_mask") is None and kwargs.get("cache") is None
            and not any(_hooked(layer) for layer in self.layer)):
        rows = _kernel_rows(self, attention_mask, hidden_states.shape[0], hidden_states.shape[1])
        index, lengths = rows if rows is not None else (real_positions(attention_mask, getattr(self, _FLAG)), None)
    if index is None:
        return full(self, hidden_states, attention_mask, encoder_hidden_states, *args, **kwargs)
    from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.bert.modeling_bert import eager_attention_forward

    batch, length, hidden = hidden_states.shape
    layers = list(self.layer)
    tail = layers[-1] if first_token.applies_to(layers[-1]) else None  # the shortcut's layer runs padded
    config = layers[0].attention.self.config  # one config, so one attention function, for every layer
    interface = ALL_ATTENTION_FUNCTIONS.get_interface(config._attn_implementation, eager_attention_forward)
    dense = index.numel() == batch * length  # the kernel's batch without padding: rows are the positions
    x = hidden_states.reshape(batch * length, hidden)
    x = x if dense else x.index_select(0, index)
    for layer in layers[:-1] if tail is not None else layers:
        x = _layer(layer, x, index, batch, length, attention_mask, interface, lengths)
    padded = x.view(batch, length, -1) if dense else (
        x.new_zeros(batch * length, x.shape[-1]).index_copy(0, index, x).view(batch, length, -1))
    if tail is not None:
        padded = tail(padded, attention_mask)
    return BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=padded)


def _layer(layer: nn.Module, x: torch.Tensor, index: torch.Tensor, batch: int, length: int,
           mask: torch.Tensor | None, interface: Any, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """One BERT layer on ``[real tokens, hidden]`` rows, attention (``interface``, transformers'
    attention function) in the padded layout, or on the rows themselves by the attention kernel
    where ``lengths`` (each sequence's rows) is given and the kernel takes the projections."""
    attn = layer.attention.self
    projected = fused_qkv.project(attn, x) if fused_qkv.fused(attn) else (attn.query(x), attn.key(x), attn.value(x))
    heads = projected[0].shape[-1] // attn.attention_head_size
    if lengths is not None and attention_kernel.takes(projected[0], heads):
        drop = None
        if attn.training and attn.dropout.p > 0:  # the mask SDPA draws on its fp32 probabilities
            with draws.held(attn):
                drop = drawn_mask(attn.dropout, (batch, heads, length, length), x.new_empty((), dtype=torch.float32))
        context = attention_kernel.attend(*projected, lengths, heads, attn.scaling, drop)
    else:
        context = _padded_attention(attn, projected, index, batch, length, mask, interface)
    attended = _output(layer.attention.output, context, x, index, batch, length)
    return _output(layer.output, layer.intermediate(attended), attended, index, batch, length)


def _padded_attention(attn: nn.Module, projected: tuple[torch.Tensor, ...], index: torch.Tensor, batch: int,
                      length: int, mask: torch.Tensor | None, interface: Any) -> torch.Tensor:
    """transformers' attention function on the projections spread into the padded layout; the real rows back."""

    def spread(t: torch.Tensor) -> torch.Tensor:  # [tokens, heads·d] -> [batch, heads, length, d]
        rows = t.new_zeros(batch * length, t.shape[-1]).index_copy(0, index, t)
        return rows.view(batch, length, -1, attn.attention_head_size).transpose(1, 2)

    query, key, value = (spread(t) for t in projected)
    with draws.held(attn):  # attention draws its mask here, outside the attention module's own forward
        context, _ = interface(attn, query, key, value, mask, dropout=attn.dropout.p if attn.training else 0.0,
                               scaling=attn.scaling)
    return context.reshape(batch * length, -1).index_select(0, index)


def _output(block: nn.Module, x: torch.Tensor, residual: torch.Tensor, index: torch.Tensor, batch: int,
            length: int) -> torch.Tensor:
    """A BERT output block (dense, dropout, residual LayerNorm) on real rows, with the real rows of
    the mask its dropout draws for all ``batch × length`` positions."""
    h = block.dense(x)
    if block.training and getattr(block.dropout, "p", 0.0) > 0:
        # the mask dropout draws on the padded hidden states (the same shape, dtype and device), real rows
        noise = drawn_mask(block.dropout, (batch, length, h.shape[-1]), h)
        h = h * noise.view(batch * length, -1).index_select(0, index)
    return block.LayerNorm(h + residual)
