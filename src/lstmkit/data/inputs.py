"""Texts to predict, each with the line (or id) it came from: arguments, a text file, standard
input, or the text column of a CSV/TSV/JSON Lines/fastText file (gzipped or not).

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
from lstmkit.data.formats import open_text, peek_text, sniff_format, suffix_format
from lstmkit.data.tables import choose_columns, pick_column, read_table
from lstmkit.errors import LstmkitError


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


def text_format(path: Path, given: str | None = None) -> str:
    """The format of a file of texts: `given`, else its content's, else its name's; else "txt".

    A .txt file, or one with no or an unknown extension whose content shows no table, holds one
    text per line; fastText lines (`__label__X text`) give their texts. Commas alone make no
    table: prose has them too, so a file needs its name (.csv) or --format csv for that.
    """
    if given is not None:
        return given
    hint = suffix_format(path)
    head = peek_text(path)
    sniffed = sniff_format(head, hint) if head.strip() else None
    if sniffed == "fasttext" or (hint != "txt" and sniffed is not None and (sniffed != "csv" or hint is not None)):
        return sniffed
    return hint if hint is not None else "txt"


def file_texts(path, *, text_column=None, id_column=None, file_format=None, header=None):
    """(line number or id, text) of a file: one text per line, or a table's text column.

    A table (CSV, TSV, JSON Lines, fastText; gzipped or not; see `text_format`) gives each row's
    text column (`text_column`, a name or 0-based index, else the usual names, else the longest
    cells); its row number (from 1, not counting a header), or the value of `id_column`, names it.
    """
    path = Path(path)
    if not path.is_file():
        raise LstmkitError(f"--file {path} does not exist or is not a file")
    file_format = text_format(path, file_format)
    if file_format == "txt":
        if text_column is not None or id_column is not None:
            raise LstmkitError(
                f"--text-column and --id-column are for tables (CSV, TSV, JSON Lines), not {path.name}; "
                "if it is one, say so with --format csv|tsv|jsonl"
            )
        with open_text(path) as f:
            yield from numbered_lines(f)
        return
    yield from table_texts(path, file_format, text_column=text_column, id_column=id_column, header=header)


def table_texts(path: Path, file_format: str, *, text_column=None, id_column=None, header=None):
    """(row number or id, text) of each row of a table file, its text column chosen as `file_texts` says."""
    named = any(c is not None and not c.strip().isdigit() for c in (text_column, id_column))
    table = read_table(path, file_format=file_format, header=header, named=named, labeled=False)
    column, _ = choose_columns(table, path, text_column, None, labeled=False, verbose=False)
    id_key = None if id_column is None else pick_column(table, id_column, (), "id", path)
    for n, row in enumerate(table.rows, 1):
        value = row.get(column)
        yield (n if id_key is None else str(row.get(id_key))), value if isinstance(value, str) else ""


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
