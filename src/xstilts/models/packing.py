"""Packing (``runtime.pack_sequences``): a training batch's sequences end to end in few rows.

Why: length buckets (training/batching.py) sort pools of 50 batches by length, which leaves the
long tail of a pool in one or two batches padded to their longest sentence. On the quickstart's
800 PAN-X sentences one batch of 32 reaching 84 tokens holds 2,688 positions, and an epoch 14.6 %
more positions than real tokens. Packed end to end, with position ids restarting at each sequence
and a block-diagonal attention mask, the epoch needs 2.7 % (benchmarks/bench_packing.py), and the
training loop ran those PAN-X runs 1.07× as fast; where the tail weighs less (1,200 sentences: 6.9 %
padding) or sequences are long and alike (XNLI pairs: 2.2 %) it gains next to nothing
(benchmarks/RESULTS.md). Attention runs over the longer rows, so a batch is packed only as far as
it pays (:func:`best_packing`).

What changes: nothing but rounding in the arithmetic (every real token attends to exactly the
tokens of its own sequence, at the same positions; :func:`install` checks that on the model), and
the dropout masks, which are drawn over the packed layout: a run trains like one with another
seed, so the switch is part of run ids. Only training steps are packed; evaluation keeps the
padded layout, bit for bit. Heads see the usual padded ``[batch, length, hidden]`` states
(:func:`packed_hidden` scatters them back), so no head changes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from xstilts.errors import ConfigError

MAX_ROW = 128  # longest packed row (unless a sequence is longer): attention grows with row length
# attention's cost per position relative to the linear layers' is row length / KAPPA. The value fits
# benchmarks/bench_packing.py's fp32 XNLI epoch (Intel, 2026-12-02): packed for the fewest positions,
# 0.9 % fewer positions at rows 72 instead of 46.5 long on average took 1.035× as long (0.97× the
# speed). By FLOPs alone it would be 6 × hidden = 2,304 for the default model: attention's softmax,
# mask and dropout passes cost more than their FLOPs.
KAPPA = 528.0
_STATE = "_xstilts_packing"  # set on an encoder by install(): (first position id, padding id)


def first_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Rows of item indices, longest item first, each into the first row with room."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda j: -lengths[j]):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


def best_packing(lengths: list[int], max_row: int = MAX_ROW, kappa: float = KAPPA) -> tuple[int, list[list[int]]]:
    """(row length, rows) of the cheapest packing over row lengths from the longest item to ``max_row``.

    Cost = positions × (1 + row length / ``kappa``): the linear layers' work grows with positions,
    attention's per position with the row length. At the longest item's length, first-fit-decreasing
    only puts sequences together that fit beside each other, so the cheapest packing is never
    dearer than the padded batch. Ties go to the shorter row. A row length whose lower bound (the
    tokens rounded up to whole rows) cannot beat the best so far is skipped.
    """
    longest, total = max(lengths), sum(lengths)
    best_cost, best_width, best_rows = float("inf"), longest, [[i] for i in range(len(lengths))]
    for width in range(longest, max(longest, max_row) + 1):
        factor = 1 + width / kappa
        if -(-total // width) * width * factor >= best_cost:
            continue
        rows = first_fit_decreasing(lengths, width)
        cost = len(rows) * width * factor
        if cost < best_cost:
            best_cost, best_width, best_rows = cost, width, rows
    return best_width, best_rows


@dataclass
class Packed:
    """A packed batch and where its real tokens came from."""

    input_ids: torch.Tensor  # [rows, width]
    position_ids: torch.Tensor  # [rows, width], restarting at each sequence
    attention_mask: torch.Tensor  # [rows, 1, width, width] bool, True = attend (same sequence)
    packed_index: torch.Tensor  # flat packed position of each real token
    padded_index: torch.Tensor  # flat padded position of the same token
    padded_shape: tuple[int, int]


def pack(input_ids: torch.Tensor, attention_mask: torch.Tensor, pad_id: int, position_offset: int = 0,
         max_row: int = MAX_ROW, kappa: float = KAPPA) -> Packed:
    """Pack a right-padded batch (``attention_mask`` 1 on real tokens, which come first in each row).

    Padding positions of the packed rows form one segment of their own, so that no attention row
    is empty (an all-masked softmax row would be NaN).
    """
    lengths = attention_mask.sum(dim=1).tolist()
    width, rows = best_packing(lengths, max_row, kappa)
    batch, length = input_ids.shape
    ids = torch.full((len(rows), width), pad_id, dtype=input_ids.dtype)
    positions = torch.full((len(rows), width), position_offset, dtype=torch.long)
    segment = torch.full((len(rows), width), -1, dtype=torch.long)
    packed_index, padded_index = [], []
    for r, members in enumerate(rows):
        start = 0
        for i in members:
            n = lengths[i]
            ids[r, start: start + n] = input_ids[i, :n]
            positions[r, start: start + n] = torch.arange(position_offset, position_offset + n)
            segment[r, start: start + n] = i
            packed_index.append(torch.arange(r * width + start, r * width + start + n))
            padded_index.append(torch.arange(i * length, i * length + n))
            start += n
    return Packed(ids, positions, segment[:, None, :, None] == segment[:, None, None, :],
                  torch.cat(packed_index), torch.cat(padded_index), (batch, length))


def unpack(states: torch.Tensor, packed: Packed) -> torch.Tensor:
    """[rows, width, hidden] packed states back to [batch, length, hidden], zeros at padding."""
    hidden = states.shape[-1]
    flat = states.reshape(-1, hidden).index_select(0, packed.packed_index)
    batch, length = packed.padded_shape
    out = flat.new_zeros(batch * length, hidden).index_copy(0, packed.padded_index, flat)
    return out.view(batch, length, hidden)


def _model(encoder: nn.Module) -> nn.Module:
    return getattr(encoder, "module", encoder)  # under DDP the state sits on the wrapped model


def packed_hidden(encoder: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The encoder's last hidden states for a padded batch, computed packed (after :func:`install`)."""
    offset, pad_id = getattr(_model(encoder), _STATE)
    packed = pack(input_ids.cpu(), attention_mask.cpu(), pad_id, offset)
    states = encoder(input_ids=packed.input_ids.to(input_ids.device),
                     position_ids=packed.position_ids.to(input_ids.device),
                     attention_mask=packed.attention_mask.to(input_ids.device)).last_hidden_state
    return unpack(states, replace(packed, packed_index=packed.packed_index.to(states.device),
                                  padded_index=packed.padded_index.to(states.device)))


def installed(encoder: nn.Module) -> bool:
    return hasattr(_model(encoder), _STATE)


def install(encoder: nn.Module, pad_id: int) -> int:
    """Enable packing for ``encoder`` after checking it on two short sequences; returns the position offset.

    The check runs in eval mode without gradients (no random numbers drawn): packed outputs must
    equal padded ones up to rounding. BERT-style models count positions from 0, RoBERTa/XLM-R
    style ones from ``pad_id + 1``; the first offset that matches is kept. A model that matches
    neither (relative positions, no 4-D masks) gets a ConfigError.
    """
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    vocab = encoder.get_input_embeddings().num_embeddings
    ids = torch.tensor([[(pad_id + k) % vocab for k in (1, 2, 3)] + [pad_id, pad_id],
                        [(pad_id + k) % vocab for k in (4, 5, 6, 7, 8)]], device=device)
    mask = (ids != pad_id).long()
    real = mask.bool()
    worst = float("inf")
    try:
        with torch.no_grad():
            reference = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            for offset in dict.fromkeys((0, pad_id + 1)):
                setattr(encoder, _STATE, (offset, pad_id))
                try:
                    states = packed_hidden(encoder, ids, mask)
                except (TypeError, ValueError, RuntimeError, IndexError):
                    continue
                worst = min(worst, float((states[real] - reference[real]).abs().max()))
                if torch.allclose(states[real], reference[real], rtol=1e-3, atol=1e-4):
                    return offset
            delattr(encoder, _STATE)
    finally:
        encoder.train(was_training)
    raise ConfigError(f"runtime.pack_sequences: {type(encoder).__name__}'s packed outputs differ from its "
                      f"padded ones (largest difference {worst:.2g}); packing needs absolute position ids "
                      "and 4-D attention masks: set pack_sequences = false for this model")
