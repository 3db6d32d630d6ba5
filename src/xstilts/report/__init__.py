"""The report people read: one self-contained HTML file, a Markdown twin, and every table as CSV."""

from __future__ import annotations

from xstilts.report.build import build_report

__all__ = ["build_report"]
