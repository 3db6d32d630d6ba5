"""Sentence embeddings for retrieval: pooled hidden states of one encoder layer.

XTREME scores its two retrieval tasks (Tatoeba, BUCC 2018) on the encoder as it is, with no
target-task training: sentences are embedded by mean-pooling the hidden states of one
intermediate layer and compared by cosine similarity (search and scoring live with the tasks,
:mod:`xstilts.tasks._retrieval`). Phang et al. (2020) do the same on the phase-2 checkpoint
(jiant's ``EmbeddingModel``: mean pooling, ``hidden_states[14]`` of the 24-layer XLM-R large),
which follows XTREME's reference scripts: ``--specific_layer 7`` over the 12 layer outputs of
mBERT (= ``hidden_states[8]``) and ``13`` over the 24 of XLM-R large (= ``hidden_states[14]``).
``layer = "xtreme"`` picks exactly those (8 of 12, 14 of 24) and, for other depths, the layer at
the same relative depth as 14/24. Mean pooling covers every non-padding position, special tokens
included, as XTREME's ``mean_pool_embedding`` does.

Sentences are batched and padded by the same code as every evaluation set
(:func:`~xstilts.training.batching.eval_batches`, :func:`~xstilts.heads.base.pad`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from xstilts.errors import ConfigError
from xstilts.heads.base import pad
from xstilts.training.batching import eval_batches

#: XTREME's choice per encoder depth (hidden_states index; 0 = embeddings).
XTREME_LAYERS = {12: 8, 24: 14}


def resolve_layer(layer: int | str, n_layers: int) -> int:
    """Index into ``hidden_states`` (0 = embedding output, ``n_layers`` = last layer)."""
    if layer in ("xtreme", "auto"):
        return XTREME_LAYERS.get(n_layers, max(1, min(n_layers, round(n_layers * 14 / 24))))
    if layer == "last":
        return n_layers
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise ConfigError(f"retrieval option 'layer' must be an integer, 'xtreme' or 'last', not {layer!r}")
    index = n_layers + 1 + layer if layer < 0 else layer
    if not 0 <= index <= n_layers:
        raise ConfigError(f"retrieval layer {layer} out of range for a {n_layers}-layer encoder "
                          f"(0 = embeddings ... {n_layers} = last, or negative from the end)")
    return index


def embed_sentences(encoder: Any, tokenizer: Any, sentences: Sequence[str], *, layer: int | str = "xtreme",
                    pool: str = "mean", prefix: str = "", max_length: int = 128, batch_size: int = 64,
                    ) -> np.ndarray:
    """Pooled hidden states of one layer, one float32 row per sentence, in input order.

    Sentences are batched by tokenised length (less padding); padding never enters the pool.
    """
    return embed_sentences_layers(encoder, tokenizer, sentences, layers=(layer,), pool=pool, prefix=prefix,
                                  max_length=max_length, batch_size=batch_size)[0]


def embed_sentences_layers(encoder: Any, tokenizer: Any, sentences: Sequence[str], *,
                           layers: Sequence[int | str], pool: str = "mean", prefix: str = "",
                           max_length: int = 128, batch_size: int = 64) -> list[np.ndarray]:
    """Like :func:`embed_sentences` for several layers at once (one forward pass): one array per layer."""
    if pool not in ("mean", "cls"):
        raise ConfigError(f"retrieval option 'pool' must be 'mean' or 'cls', not {pool!r}")
    n_layers = int(encoder.config.num_hidden_layers)
    indices = [resolve_layer(layer, n_layers) for layer in layers]
    dim = int(encoder.config.hidden_size)
    outs = [np.zeros((len(sentences), dim), dtype=np.float32) for _ in indices]
    if not sentences:
        return outs
    ids = tokenizer([prefix + s for s in sentences], truncation=True, max_length=max_length)["input_ids"]
    lengths = [len(x) for x in ids]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.inference_mode():
            for idx in eval_batches(lengths, batch_size):
                input_ids = pad([ids[i] for i in idx], pad_id).to(device)
                mask = pad([[1] * lengths[i] for i in idx], 0).to(device)
                hidden_states = encoder(input_ids=input_ids, attention_mask=mask,
                                        output_hidden_states=True).hidden_states
                m = mask.unsqueeze(-1).float()
                for out, index in zip(outs, indices, strict=True):
                    hidden = hidden_states[index].float()
                    pooled = hidden[:, 0] if pool == "cls" else (hidden * m).sum(dim=1) / m.sum(dim=1)
                    out[idx] = pooled.cpu().numpy()
    finally:
        if was_training:
            encoder.train()
    return outs
