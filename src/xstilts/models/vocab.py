"""Vocabulary trimming: train only the word-embedding rows that an experiment's data can reach.

Why: the default model's 250,037 × 384 word-embedding matrix is 82 % of its parameters. With a
dense embedding gradient and AdamW, every step zeroes, clips, reads and writes that matrix, its
gradient and two moment buffers, although a run's data uses a few thousand distinct tokens.
:func:`trim_vocabulary` swaps the encoder's input embedding for a :class:`TrimmedEmbedding` that
holds only those rows and maps token ids to them, so nothing else (features, heads, evaluation)
changes: the model still takes full-vocabulary ids.

Exactness: the forward pass looks up the same vectors, so logits are identical. During training
the full model's untouched rows get a zero gradient, so AdamW (decoupled weight decay) only
multiplies them by ``1 - lr_t * weight_decay`` each step. The trimmed matrix carries one extra
*sentinel* row of ones that no id maps to: it receives exactly that treatment (and is restored
with the best weights like every other row), so when the full matrix is rebuilt
(:meth:`TrimmedEmbedding.full_weight`) the rows that were left out are scaled by the sentinel's
value and the trained rows are scattered back. A phase-2 checkpoint is therefore the same
full-vocabulary matrix full training would have produced, up to floating-point rounding.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from xstilts.errors import XstiltsError


class TrimmedEmbedding(nn.Module):
    """An ``nn.Embedding`` stand-in holding the rows of ``keep`` (+ a decay sentinel) of ``full``."""

    def __init__(self, full: nn.Embedding, keep: torch.Tensor):
        super().__init__()
        keep = torch.unique(keep.to(torch.long).cpu())  # sorted, distinct
        vocab, dim = full.weight.shape
        if len(keep) == 0 or int(keep.min()) < 0 or int(keep.max()) >= vocab:
            raise XstiltsError(f"token ids to keep must lie in [0, {vocab}); got {len(keep)} ids "
                               f"spanning [{int(keep.min()) if len(keep) else '-'}, "
                               f"{int(keep.max()) if len(keep) else '-'}]")
        source = full.weight.detach()
        rows = torch.cat([source[keep.to(source.device)], torch.ones(1, dim, dtype=source.dtype,
                                                                     device=source.device)])
        self.weight = nn.Parameter(rows, requires_grad=full.weight.requires_grad)
        lut = torch.full((vocab,), -1, dtype=torch.long)
        lut[keep] = torch.arange(len(keep))
        self.register_buffer("lut", lut.to(source.device), persistent=False)
        self.register_buffer("kept", keep.to(source.device), persistent=False)
        self.num_embeddings = vocab  # what callers asking the model's vocabulary size expect
        self.embedding_dim = dim
        pad = full.padding_idx
        self.padding_idx = int(lut[pad]) if pad is not None and int(lut[pad]) >= 0 else None
        # The untrimmed matrix stays a plain attribute: not a parameter (no optimizer state, no
        # gradient), not in state_dict, and never moved to an accelerator by ``.to()``.
        self._full = source

    @property
    def sentinel(self) -> torch.Tensor:
        """The row no id maps to: 1.0 times every decay factor the optimizer applied."""
        return self.weight[-1]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        rows = self.lut[input_ids]
        # (compiled graphs skip the check: a data-dependent branch would split the graph; the
        # lookup of row -1 still fails there, with PyTorch's index error)
        if not torch.compiler.is_compiling() and bool((rows < 0).any()):
            bad = input_ids[rows < 0].unique()[:5].tolist()
            raise XstiltsError(f"token id(s) {bad} are outside the trimmed vocabulary of this run "
                               "(runtime.trim_vocab keeps only ids found in the run's data)")
        return nn.functional.embedding(rows, self.weight, self.padding_idx)

    def full_weight(self) -> torch.Tensor:
        """The full-vocabulary matrix: trained rows scattered back, the others decayed as in full training."""
        trained = self.weight.detach()
        decay = trained[-1].float().mean().item()
        full = self._full.clone() if decay == 1.0 else self._full * decay
        full[self.kept.to(full.device)] = trained[:-1].to(device=full.device, dtype=full.dtype)
        return full

    def extra_repr(self) -> str:
        return f"{len(self.kept)} of {self.num_embeddings} rows, dim {self.embedding_dim}"


def used_token_ids(feature_sets: Iterable[Iterable[dict[str, Any]]],
                   extra: Iterable[int] = ()) -> torch.Tensor:
    """Distinct ``input_ids`` over every feature of every set (nested lists allowed: multiple choice)."""
    chunks: list[np.ndarray] = [np.asarray(list(extra), dtype=np.int64)]

    def add(ids: Any) -> None:
        if len(ids) and not isinstance(ids[0], int | np.integer):  # one sequence per choice
            for part in ids:
                add(part)
        else:
            chunks.append(np.asarray(ids, dtype=np.int64))

    for features in feature_sets:
        for f in features:
            add(f["input_ids"])
    return torch.from_numpy(np.unique(np.concatenate(chunks)))


def trim_vocabulary(encoder: nn.Module, keep: torch.Tensor) -> TrimmedEmbedding:
    """Replace the encoder's input embedding by a :class:`TrimmedEmbedding` of the ``keep`` rows."""
    current = encoder.get_input_embeddings()
    if isinstance(current, TrimmedEmbedding):
        raise XstiltsError("the encoder's vocabulary is already trimmed")
    if not isinstance(current, nn.Embedding):
        raise XstiltsError(f"cannot trim an input embedding of type {type(current).__name__}")
    if current.padding_idx is not None:  # collate pads with it, so it must stay reachable
        keep = torch.cat([keep.to(torch.long).cpu(), torch.tensor([current.padding_idx])])
    trimmed = TrimmedEmbedding(current, keep)
    encoder.set_input_embeddings(trimmed)
    return trimmed


def trimmed_embedding(encoder: nn.Module) -> tuple[str, TrimmedEmbedding] | None:
    """(module name, module) of the encoder's trimmed embedding, or None when it is not trimmed."""
    for name, module in encoder.named_modules():
        if isinstance(module, TrimmedEmbedding):
            return name, module
    return None


def full_state_dict(encoder: nn.Module) -> dict[str, torch.Tensor]:
    """``encoder.state_dict()`` with a trimmed embedding expanded back to the full vocabulary."""
    state = encoder.state_dict()
    found = trimmed_embedding(encoder)
    if found is not None:
        name, module = found
        key = f"{name}.weight" if name else "weight"
        state[key] = module.full_weight()
    return state


def untrim_vocabulary(encoder: nn.Module) -> nn.Embedding | None:
    """Put a full ``nn.Embedding`` (trained rows scattered back) in place of a trimmed one."""
    found = trimmed_embedding(encoder)
    if found is None:
        return None
    _, module = found
    pad = None if module.padding_idx is None else int(module.kept[module.padding_idx])
    full = nn.Embedding(module.num_embeddings, module.embedding_dim, padding_idx=pad,
                        device=module.weight.device, dtype=module.weight.dtype)
    with torch.no_grad():
        full.weight.copy_(module.full_weight())
    full.weight.requires_grad_(module.weight.requires_grad)
    encoder.set_input_embeddings(full)
    return full
