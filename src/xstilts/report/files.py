"""Atomic file writes for the report.

Why: a reader (a browser refreshing the report, a CI job collecting CSVs) must never see a
half-written file, and an interrupted build must not leave a truncated one behind. Each file goes
through :func:`xstilts.faults.atomic_path`: written to a temporary sibling, flushed to disk, then
renamed over the target in one step.
"""

from __future__ import annotations

from pathlib import Path

from xstilts.faults import atomic_path


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Replace ``path`` with ``data`` all at once (same-directory temp file + ``os.replace``)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))
