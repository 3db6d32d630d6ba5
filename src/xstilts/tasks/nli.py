"""Readers shared by the NLI tasks (MNLI, SNLI, ANLI, XNLI, SICK): one label vocabulary."""

from __future__ import annotations

from pathlib import Path

from xstilts.errors import DataError

NLI_LABELS = ("entailment", "neutral", "contradiction")
_ALIASES = {"e": "entailment", "n": "neutral", "c": "contradiction", "contradictory": "contradiction"}


def nli_label(raw: str, path: Path, line: int) -> str:
    """Map the label spellings of the NLI corpora onto one label set, rejecting anything else."""
    label = raw.strip().lower()
    label = _ALIASES.get(label, label)
    if label not in NLI_LABELS:
        raise DataError(f"unknown NLI label {raw!r} (expected one of {', '.join(NLI_LABELS)})", path, line)
    return label
