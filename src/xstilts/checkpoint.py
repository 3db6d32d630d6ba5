"""Checkpoints: the encoder phase 2 hands to phase 3, and a phase-3 run's trained head (kept with
``runtime.save_target_checkpoints`` so the run can be exported). Written atomically (temp + rename).

A head file holds the head's weights and, in its safetensors metadata, what rebuilding it needs
(head kind, task, label names, task options, max length): one file, so it is there whole or not at all.

The file is serialised in memory and written by xstilts itself: ``safetensors.torch.save_file``
writes through a ``.tmpXXXXXX`` file of its own beside the target, which a killed process leaves
behind (a model-sized file per crash) under a name no xstilts sweep could tell from anyone else's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn

from xstilts.distributed import process_state
from xstilts.errors import XstiltsError
from xstilts.faults import atomic_path, sweep_directory
from xstilts.models.vocab import full_state_dict

ENCODER_FILE = "encoder.safetensors"
HEAD_FILE = "head.safetensors"
HEAD_INFO_KEY = "xstilts_head"  # safetensors metadata key of the head's description (JSON)


def write_safetensors(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """The safetensors file of ``state``, written to ``path`` itself and nowhere else."""
    path.write_bytes(save(state, metadata))


def _write_on_main(target: Path, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """Write ``state`` to ``target`` atomically from the main process; the others wait until it is there.

    Under ``accelerate launch`` every process holds the same weights, so one writer is enough.
    """
    procs = process_state()
    if not procs.is_main_process:
        procs.wait_for_everyone()
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        sweep_directory(target.parent)  # temp files of a killed earlier attempt at this run
        # temp + fsync + rename; costs a second copy of the weights in memory while it writes
        with atomic_path(target, fault="checkpoint_write") as tmp:
            write_safetensors(state, tmp, metadata)
    finally:
        procs.wait_for_everyone()
    return target


def save_encoder(encoder: nn.Module, directory: Path) -> Path:
    """Save encoder weights to ``directory/encoder.safetensors``; the old file survives any failure."""
    # a trimmed vocabulary (runtime.trim_vocab) is scattered back: checkpoints are always full-size
    state = {k: v.detach().contiguous() for k, v in full_state_dict(encoder).items()}
    return _write_on_main(directory / ENCODER_FILE, state)


def save_head(head: nn.Module, info: dict[str, Any], directory: Path) -> Path:
    """Save a trained head and its description ``info`` (JSON-able) to ``directory/head.safetensors``."""
    state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    return _write_on_main(directory / HEAD_FILE, state, {HEAD_INFO_KEY: json.dumps(info, sort_keys=True)})


def load_head(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights and description saved by :func:`save_head`."""
    path = Path(directory) / HEAD_FILE
    if not path.is_file():
        raise XstiltsError("this checkpoint has no trained head (saved by an xstilts without head checkpoints); "
                           "forget the run and run again with [runtime] save_target_checkpoints = true", path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            info = json.loads((fh.metadata() or {})[HEAD_INFO_KEY])
            state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open is not a dict
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise XstiltsError(f"damaged head checkpoint ({type(exc).__name__}: {exc})", path) from None
    return state, info


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
