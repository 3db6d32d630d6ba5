"""``build_report``: analyse an experiment and write the HTML report, its Markdown twin and CSVs.

Everything lands in one folder (``EXPDIR/report`` by default): ``report.html`` (self-contained),
``report.md`` with its PNG figures beside it, ``summary.txt``, and every analysis table as CSV.
Each file is replaced atomically, so a rebuild never leaves a half-written report.
"""

from __future__ import annotations

from pathlib import Path

from xstilts.analysis import Analysis, analyze
from xstilts.report.document import build_document
from xstilts.report.files import write_bytes_atomic, write_text_atomic
from xstilts.report.html import render_html
from xstilts.report.markdown import render_markdown
from xstilts.report.plots import render_all

__all__ = ["build_report", "write_report"]


def write_report(analysis: Analysis, out_dir: Path, title: str) -> dict[str, Path]:
    """Write an existing :class:`Analysis` as report files; returns name -> path.

    Keys: ``html``, ``markdown``, ``summary``, and the file name of every CSV and PNG.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, table in analysis.tables().items():
        written[f"{name}.csv"] = write_text_atomic(out_dir / f"{name}.csv", table.to_csv(index=False))
    written["summary"] = write_text_atomic(out_dir / "summary.txt", analysis.summary + "\n")
    figures = render_all(analysis)
    image_files = {}
    for key, png in figures.items():
        image_files[key] = f"{key}.png"
        written[f"{key}.png"] = write_bytes_atomic(out_dir / f"{key}.png", png)
    blocks = build_document(analysis, set(figures), title)
    written["markdown"] = write_text_atomic(out_dir / "report.md", render_markdown(blocks, image_files))
    written["html"] = write_text_atomic(out_dir / "report.html", render_html(blocks, figures, title))
    return written


def build_report(
    expdir: Path, out_dir: Path | None = None, n_boot: int = 2000, seed: int = 0
) -> dict[str, Path]:
    """Analyse ``expdir``'s results store and write the report to ``out_dir`` (default ``expdir/report``)."""
    expdir = Path(expdir)
    out = Path(out_dir) if out_dir is not None else expdir / "report"
    analysis = analyze(expdir, n_boot=n_boot, seed=seed)
    return write_report(analysis, out, f"xstilts report: {expdir.resolve().name}")
