"""Texts to predict, each with the line (or id) it came from: arguments, a text file, standard
input, or the text column of a CSV/TSV/JSON Lines file.

A text file or standard input holds one text per line, and a line ends at "\n" only (a "\r"
before it is dropped): the other characters Python's `splitlines` breaks at (U+2028, U+0085,
form feed, ...) stay inside the text, so every output row matches an input line. Lines are read
as they arrive, so a long stream is labelled as it goes.

>>> list(numbered_lines(io.StringIO("a\\u2028b\\r\\n\\nc")))
[(1, 'a\\u2028b'), (2, ''), (3, 'c')]
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from lstmkit.data.dataset import decode_text
from lstmkit.data.files import TEXT_COLUMNS, pick_column, read_delimited, read_json_lines
from lstmkit.data.imdb import read_bytes
from lstmkit.errors import LstmkitError

TABLES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".jsonl": None, ".ndjson": None, ".json": None}


def numbered_lines(stream) -> Iterator[tuple[int, str]]:
    """(line number from 1, text) of each line of a text stream, split at "\\n" only."""
    n = 0
    for n, line in enumerate(stream, 1):
        yield n, line.removesuffix("\n").removesuffix("\r")


def valid_utf8(text: str) -> str:
    """The text with what is not UTF-8 replaced by U+FFFD, as files are read: bytes the shell
    passed through undecoded (Python keeps them as U+DC80..U+DCFF) and lone surrogates (a JSON
    escape such as "\\ud800"), which could be neither printed nor saved.

    >>> valid_utf8("caf\\udce9 \\ud800!")
    'caf\\ufffd \\ufffd!'
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    lone = _LONE_SURROGATE.sub("\ufffd", text)  # what surrogateescape cannot turn back into bytes
    return decode_text(lone.encode("utf-8", "surrogateescape"))[0]


_LONE_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def stdin_text() -> str:
    """All of standard input as one text, decoded as UTF-8 (bad bytes replaced)."""
    raw = getattr(sys.stdin, "buffer", None)
    return decode_text(raw.read())[0] if raw else valid_utf8(sys.stdin.read())


def stdin_lines() -> Iterator[tuple[int, str]]:
    """Standard input's lines as they arrive, decoded as UTF-8 (bad bytes replaced)."""
    raw = getattr(sys.stdin, "buffer", None)
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="\n") if raw else sys.stdin
    return numbered_lines(stream)


def file_texts(path, *, text_column=None, id_column=None) -> Iterator[tuple[int | str, str]]:
    """(line number or id, text) of a file: one text per line, or a table's text column.

    A .csv/.tsv/.jsonl file gives each row's text column (`text_column`, else the usual names);
    its row number (from 1, not counting the header), or the value of `id_column`, names it.
    """
    path = Path(path)
    if not path.is_file():
        raise LstmkitError(f"--file {path} does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix not in TABLES:
        if text_column is not None or id_column is not None:
            raise LstmkitError(f"--text-column and --id-column are for .csv/.tsv/.jsonl files, not {path.name}")
        with open(path, encoding="utf-8", errors="replace", newline="\n") as f:
            yield from numbered_lines(f)
        return
    text = decode_text(read_bytes(path))[0].removeprefix("\ufeff")
    delimiter = TABLES[suffix]
    columns, rows = read_delimited(text, delimiter, path) if delimiter else read_json_lines(text, path)
    column = pick_column(columns, text_column, TEXT_COLUMNS, "text", path)
    if id_column is not None and id_column not in columns:
        raise LstmkitError(
            f"{path.name} has no column '{id_column}' (columns: {', '.join(columns)}); pass one with --id-column"
        )
    for n, row in enumerate(rows, 1):
        value = row.get(column)
        yield (n if id_column is None else str(row.get(id_column))), value if isinstance(value, str) else ""


def non_blank(rows: Iterable[tuple], skipped: list) -> Iterator[tuple]:
    """The rows whose text is not blank; the others' line numbers or ids are appended to `skipped`."""
    for where, text in rows:
        if text.strip():
            yield where, text
        else:
            skipped.append(where)


def chunks(rows: Iterable, size: int) -> Iterator[list]:
    """Lists of at most `size` consecutive rows, each handed on as soon as it is full."""
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
