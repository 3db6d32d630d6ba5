"""Checkpoint averaging: a uniform average of a run's weights at its evaluated checkpoints.

Why: English dev often disagrees with the target languages about which checkpoint is best
(Keung et al., 2020); averaging the weights of the checkpoints removes that choice and makes
zero-shot transfer steadier (Schmidt et al., 2023). The average is kept in memory while training
runs (no checkpoint files) and evaluated once at the end as its own selection row.

Two modes:

* ``"all"``: every evaluated checkpoint. One running **sum** in float64 on the CPU and a count;
  the average is ``sum / n`` rounded once to each tensor's dtype. float64 makes the sum of a few
  dozen float32 checkpoints exact to float32 precision, so the average of two state dicts is their
  correctly rounded mean (a running mean ``a + (w − a)/n`` in float32 is not). Cost: one float64
  copy of the weights in host memory, whatever the number of checkpoints.
* ``"last-k"``: the last ``k`` evaluated checkpoints. At most ``k`` copies (CPU, original dtype)
  in a ring; the average is formed once at the end. A sliding sum would still need the ``k``
  copies to subtract the oldest, so the ring is the cheapest exact scheme.

Non-floating tensors (integer buffers such as ``position_ids``) are not averaged: the latest
value is kept. The modules are unwrapped first (DDP under Accelerate, ``torch.compile``), so the
state dict keys are the plain model's and the average loads into the unwrapped modules.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import torch
from torch import nn

AVERAGE_MODES = ("all", "last-k")


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module inside DDP / DataParallel / ``torch.compile`` wrappers (Accelerate's rule)."""
    from accelerate.utils import extract_model_from_parallel

    return extract_model_from_parallel(module, keep_torch_compile=False)


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in unwrap(module).state_dict().items()}


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Uniform mean of state dicts with equal keys: float tensors averaged in float64 and rounded once to
    their own dtype, other tensors taken from the last state."""
    if not states:
        raise ValueError("no state dicts to average")
    out: dict[str, torch.Tensor] = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            total = torch.zeros(last.shape, dtype=torch.float64)
            for s in states:
                total += s[key].detach().to("cpu", torch.float64)
            out[key] = (total / len(states)).to(last.dtype)
        else:
            out[key] = last.detach().to("cpu", copy=True)
    return out


class WeightAverage:
    """Running uniform average of ``modules``' weights at the checkpoints :meth:`update` is called on."""

    def __init__(self, modules: Sequence[nn.Module], mode: str = "all", k: int = 3) -> None:
        if mode not in AVERAGE_MODES:
            raise ValueError(f"unknown averaging mode {mode!r} (one of {', '.join(AVERAGE_MODES)})")
        if mode == "last-k" and k < 1:
            raise ValueError("last-k averaging needs k >= 1")
        self.modules = list(modules)
        self.mode, self.k = mode, k
        self.count = 0
        self.steps: list[int] = []  # the steps averaged (for the record)
        self._sums: list[dict[str, torch.Tensor]] | None = None  # mode "all"
        self._last: list[dict[str, torch.Tensor]] | None = None  # mode "all": non-float tensors
        self._ring: deque[list[dict[str, torch.Tensor]]] = deque(maxlen=k if mode == "last-k" else 1)

    @property
    def name(self) -> str:
        """The selection kind the averaged model's scores are stored under (``average-all``, ``average-last3``)."""
        return "average-all" if self.mode == "all" else f"average-last{self.k}"

    def update(self, step: int) -> None:
        """Add the modules' current weights (call once per evaluated checkpoint)."""
        snaps = [_snapshot(m) for m in self.modules]
        self.count += 1
        self.steps.append(int(step))
        if self.mode == "last-k":
            self._ring.append(snaps)
            self.steps = self.steps[-self.k:]
            return
        if self._sums is None:
            self._sums = [{k: v.to(torch.float64) for k, v in s.items() if v.is_floating_point()} for s in snaps]
        else:
            for sums, snap in zip(self._sums, snaps, strict=True):
                for k, total in sums.items():
                    total += snap[k].to(torch.float64)
        self._last = [{k: v for k, v in s.items() if not v.is_floating_point()} for s in snaps]

    def states(self) -> list[dict[str, torch.Tensor]]:
        """The averaged state dict of every module, in the order given."""
        if self.count == 0:
            raise RuntimeError("no checkpoint was averaged")
        if self.mode == "last-k":
            return [average_state_dicts([snaps[i] for snaps in self._ring]) for i in range(len(self.modules))]
        assert self._sums is not None and self._last is not None
        n = self.count
        out = []
        for module, sums, last in zip(self.modules, self._sums, self._last, strict=True):
            ref = unwrap(module).state_dict()
            state = {k: (sums[k] / n).to(ref[k].dtype) if k in sums else last[k] for k in ref}
            out.append(state)
        return out

    def load_into(self) -> None:
        """Replace the modules' weights by the average (strict: every key must match)."""
        for module, state in zip(self.modules, self.states(), strict=True):
            plain = unwrap(module)
            current = plain.state_dict()
            plain.load_state_dict({k: v.to(current[k].device) for k, v in state.items()}, strict=True)
