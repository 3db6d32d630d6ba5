"""Shared line readers for the distributed file formats, with file:line errors.

Every reader accepts a UTF-8 BOM and Windows line endings (CRLF is not an error), and turns
invalid UTF-8, a wrong column count or bad JSON into a :class:`DataError` naming the line.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xstilts.errors import DataError
from xstilts.tasks.base import require_file


def line_of(path: Path, needle: str) -> int | None:
    """1-based line of the first occurrence of ``needle`` in a text file, to name it in an error."""
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError:
        return None
    pos = text.find(needle)
    return text.count("\n", 0, pos) + 1 if pos >= 0 else None


def decode_utf8(path: Path, raw: bytes, strip_bom: bool = True) -> str:
    """``raw``, the bytes of ``path``, as text (without a leading BOM unless ``strip_bom`` is False).

    Invalid UTF-8 is a DataError naming its line and its byte offset in the file: a decoder's own
    offset counts from the start of whatever it was given (a line, a read chunk), not the file's.
    """
    skip = len(codecs.BOM_UTF8) if strip_bom and raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = skip + exc.start
        raise DataError(f"invalid UTF-8 at byte {at}", path, raw.count(b"\n", 0, at) + 1) from None


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its line ending) for every line of a UTF-8 file."""
    require_file(path)
    with open(path, "rb") as fh:
        offset = 0  # of the line in the file: an error names the file's byte, as decode_utf8 does
        for lineno, raw in enumerate(fh, start=1):
            skip = len(codecs.BOM_UTF8) if lineno == 1 and raw.startswith(codecs.BOM_UTF8) else 0
            try:
                text = raw[skip:].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"invalid UTF-8 at byte {offset + skip + exc.start}", path, lineno) from None
            offset += len(raw)
            yield lineno, text.rstrip("\r\n")


def read_tsv(path: Path, min_cols: int, max_cols: int | None = None, header: bool = False,
             ) -> Iterator[tuple[int, list[str]]]:
    """Rows of a tab-separated file with a checked column count; blank lines are skipped."""
    max_cols = max_cols if max_cols is not None else min_cols
    for lineno, line in iter_lines(path):
        if header and lineno == 1:
            continue
        if not line.strip():
            continue
        cols = line.split("\t")
        if not min_cols <= len(cols) <= max_cols:
            want = str(min_cols) if min_cols == max_cols else f"{min_cols}-{max_cols}"
            raise DataError(f"expected {want} tab-separated columns, found {len(cols)}", path, lineno)
        yield lineno, cols


def read_tsv_header(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a TSV with a header line, as dicts; missing required columns name the header line."""
    names: list[str] | None = None
    for lineno, line in iter_lines(path):
        if names is None:
            names = line.split("\t")
            missing = [c for c in required if c not in names]
            if missing:
                raise DataError(f"header lacks column(s) {', '.join(missing)}", path, lineno)
            continue
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != len(names):
            raise DataError(f"expected {len(names)} tab-separated columns, found {len(cols)}", path, lineno)
        yield lineno, dict(zip(names, cols, strict=True))


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Objects of a JSON-lines file; a line that is not a JSON object is an error at that line."""
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON ({exc.msg})", path, lineno) from None
        if not isinstance(obj, dict):
            raise DataError("expected a JSON object on each line", path, lineno)
        yield lineno, obj


def read_json(path: Path) -> Any:
    """A whole JSON document; syntax errors name the line."""
    require_file(path)
    text = decode_utf8(path, path.read_bytes())
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON ({exc.msg})", path, exc.lineno) from None


def read_csv_dicts(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV with header as dicts, with the physical line each row starts on.

    The file is decoded whole before parsing, so invalid UTF-8 is named by its line (a decoding
    file object only knows the offset into the chunk it was decoding).
    """
    require_file(path)
    reader = csv.DictReader(io.StringIO(decode_utf8(path, path.read_bytes()), newline=""))
    try:
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"header lacks column(s) {', '.join(missing)}", path, 1)
        start = reader.line_num + 1
        for row in reader:
            if None in row or any(v is None for v in row.values()):
                raise DataError("wrong number of CSV fields", path, start)
            yield start, row
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"malformed CSV ({exc})", path, reader.line_num) from None


def read_conll(path: Path, tags: tuple[str, ...] | None = None, lang: str | None = None,
               ) -> list[tuple[int, list[str], list[str]]]:
    """Sentences of a ``token<TAB>tag`` file (blank line between sentences).

    Returns (first line, tokens, tags). Accepts the raw XTREME form too, where every token carries
    the file's language as a prefix (``de:Berlin``): with ``lang`` given, ``{lang}:`` is stripped
    once from every token, but only when *every* token of the file carries it. The decision is per
    file because the prefix is a property of how the file was made, and a per-token (or even
    per-sentence) guess would corrupt real tokens such as ``bar:24``, ``xml:base`` or ``ftp://x.org``
    (a one-word sentence ``de:Dur`` in an unprefixed German file would be stripped per sentence).
    """
    sentences: list[tuple[int, list[str], list[str]]] = []
    tokens: list[str] = []
    labels: list[str] = []
    token_lines: list[int] = []  # line of every token of the file, for errors after stripping
    start = 0
    for lineno, line in iter_lines(path):
        if not line.strip():
            if tokens:
                sentences.append((start, tokens, labels))
                tokens, labels = [], []
            continue
        cols = line.split("\t")
        if len(cols) != 2:
            raise DataError(f"expected 'token<TAB>tag', found {len(cols)} column(s)", path, lineno)
        token, tag = cols[0], cols[1].strip()
        if not token:
            raise DataError("empty token", path, lineno)
        if tags is not None and tag not in tags:
            raise DataError(f"unknown tag {tag!r} (expected one of {', '.join(tags)})", path, lineno)
        if not tokens:
            start = lineno
        token_lines.append(lineno)
        tokens.append(token)
        labels.append(tag)
    if tokens:
        sentences.append((start, tokens, labels))
    prefix = f"{lang}:" if lang else None
    if prefix and sentences and all(t.startswith(prefix) for _, toks, _ in sentences for t in toks):
        n = 0
        for _, toks, _ in sentences:
            for i, t in enumerate(toks):
                toks[i] = t[len(prefix):]
                if not toks[i]:
                    raise DataError(f"empty token after the language prefix {prefix!r}", path, token_lines[n])
                n += 1
    return sentences
