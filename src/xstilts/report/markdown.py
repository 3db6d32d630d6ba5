"""Render the report blocks as Markdown, with figures as PNG files next to it.

Why a Markdown twin: it diffs well in a pull request, renders on any code host, and its tables
can be pasted into a paper draft; the figures are separate files because Markdown viewers do
not reliably show embedded data URIs.
"""

from __future__ import annotations

from xstilts.report.document import Block
from xstilts.report.tables import TableView


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(view: TableView) -> str:
    lines = [f"**{view.title}**", ""]
    if not view.rows:
        return "\n".join(lines + ["_nothing to show_"])
    lines.append("| " + " | ".join(_cell(h) for h in view.header) + " |")
    lines.append("|" + "|".join("---" for _ in view.header) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in view.rows]
    if view.note:
        lines += ["", f"_{view.note}_"]
    return "\n".join(lines)


def summary_markdown(text: str) -> str:
    """As the HTML shows it: each line its own paragraph, '- ' lines a list."""
    out: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("- ") and out and out[-1].startswith("- "):
            out[-1] += "\n" + line
        else:
            out.append(line)
    return "\n\n".join(out)


def render_markdown(blocks: list[Block], image_files: dict[str, str]) -> str:
    """``image_files`` maps a figure key to its file name, relative to the Markdown file."""
    parts = []
    for b in blocks:
        if b.kind == "h1":
            parts.append(f"# {b.text}")
        elif b.kind == "h2":
            parts.append(f"## {b.text}")
        elif b.kind == "h3":
            parts.append(f"### {b.text}")
        elif b.kind == "p":
            parts.append(b.text)
        elif b.kind == "summary":
            parts.append(summary_markdown(b.text))
        elif b.kind == "table" and b.table is not None:
            parts.append(_table(b.table))
        elif b.kind == "image" and b.image in image_files:
            parts.append(f"![{b.text}]({image_files[b.image]})\n\n_{b.text}_")
        elif b.kind == "list":
            parts.append("\n".join(f"- {i}" for i in b.items or []))
    return "\n\n".join(parts) + "\n"
