"""Encoder checkpoints: what phase 2 hands to phase 3. Written atomically (temp + rename).

The file is serialised in memory and written by xstilts itself: ``safetensors.torch.save_file``
writes through a ``.tmpXXXXXX`` file of its own beside the target, which a killed process leaves
behind (a model-sized file per crash) under a name no xstilts sweep could tell from anyone else's.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from xstilts.distributed import process_state
from xstilts.errors import XstiltsError
from xstilts.faults import atomic_path, sweep_directory
from xstilts.models.vocab import full_state_dict

ENCODER_FILE = "encoder.safetensors"


def write_safetensors(state: dict[str, torch.Tensor], path: Path) -> None:
    """The safetensors file of ``state``, written to ``path`` itself and nowhere else."""
    path.write_bytes(save(state))


def save_encoder(encoder: nn.Module, directory: Path) -> Path:
    """Save encoder weights to ``directory/encoder.safetensors``; the old file survives any failure.

    Under ``accelerate launch`` every process holds the same weights: only the main one writes,
    and the others wait until the file is there.
    """
    target = directory / ENCODER_FILE
    procs = process_state()
    if not procs.is_main_process:
        procs.wait_for_everyone()
        return target
    directory.mkdir(parents=True, exist_ok=True)
    # a trimmed vocabulary (runtime.trim_vocab) is scattered back: checkpoints are always full-size
    state = {k: v.detach().contiguous() for k, v in full_state_dict(encoder).items()}
    try:
        sweep_directory(directory)  # temp files of a killed earlier attempt at this run
        # temp + fsync + rename; costs a second copy of the weights in memory while it writes
        with atomic_path(target, fault="checkpoint_write") as tmp:
            write_safetensors(state, tmp)
    finally:
        procs.wait_for_everyone()
    return target


def load_encoder_weights(encoder: nn.Module, directory: Path) -> None:
    """Load weights saved by :func:`save_encoder` into an encoder of the same architecture."""
    path = Path(directory) / ENCODER_FILE
    if not path.is_file():
        raise XstiltsError("phase-2 checkpoint is missing; delete its run from the store to retrain it", path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:  # cut short (full disk, copied half-way), overwritten
        raise XstiltsError(f"damaged phase-2 checkpoint ({exc}); delete this file and the run {path.parent.name} "
                           "from the store (results.sqlite), then run again to retrain it", path) from None
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise XstiltsError(f"checkpoint does not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})",
                           path)
    torch.set_grad_enabled(True)
