"""Render the report blocks as one self-contained HTML file.

Why self-contained: the report is mailed, attached to issues and opened on air-gapped
machines, so it carries its CSS inline and its figures as base64 PNGs, and has no scripts,
fonts or links to fetch.
"""

from __future__ import annotations

import base64
from html import escape

from xstilts.report.document import Block
from xstilts.report.tables import TableView

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #bbb; }
h3 { font-size: 1.1em; margin-top: 1.4em; }
.summary { background: #f5f7fa; border-left: 4px solid #3b6ea5; padding: .6em 1em; margin: .8em 0; }
.scroll { overflow-x: auto; margin: .8em 0; }
table { border-collapse: collapse; font-size: .85em; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: .3em 0; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: left; white-space: nowrap; }
th { background: #eef1f5; }
tr:nth-child(even) td { background: #fafafa; }
.note { font-size: .85em; color: #555; margin-top: .2em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; }
figcaption { font-size: .9em; color: #444; }
"""


def _table(view: TableView) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in view.header)
    body = "\n".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in view.rows)
    if not view.rows:
        body = f'<tr><td colspan="{len(view.header)}">nothing to show</td></tr>'
    note = f'<div class="note">{escape(view.note)}</div>' if view.note else ""
    return (
        f'<div class="scroll"><table><caption>{escape(view.title)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}</div>"
    )


def summary_html(text: str) -> str:
    """Blank lines separate paragraphs; lines starting with '- ' become list items."""
    out, items = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("- "):
            items.append(f"<li>{escape(line[2:])}</li>")
            continue
        if items:
            out.append("<ul>" + "".join(items) + "</ul>")
            items = []
        if line.strip():
            out.append(f"<p>{escape(line)}</p>")
    return '<div class="summary">' + "\n".join(out) + "</div>"


def render_html(blocks: list[Block], figures: dict[str, bytes], title: str) -> str:
    parts = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            parts.append(f"<{b.kind}>{escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            parts.append(f"<p>{escape(b.text)}</p>")
        elif b.kind == "summary":
            parts.append(summary_html(b.text))
        elif b.kind == "table" and b.table is not None:
            parts.append(_table(b.table))
        elif b.kind == "image" and b.image in figures:
            data = base64.b64encode(figures[b.image]).decode("ascii")
            parts.append(
                f'<figure><img alt="{escape(b.text, quote=True)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{escape(b.text)}</figcaption></figure>"
            )
        elif b.kind == "list":
            parts.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in b.items or []) + "</ul>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body>\n</html>\n"
    )
