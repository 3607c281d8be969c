"""What a user's file holds: its bytes un-gzipped and decoded, and its format sniffed from the content.

Formats: "csv" (comma, semicolon or pipe), "tsv" (tab), "jsonl" (JSON Lines, or one JSON array of
objects), "fasttext" (`__label__X text` lines) and "txt" (one text per line, no labels). The
content decides, the extension breaks ties: a spreadsheet's `.csv` export that uses semicolons, a
tab-separated file called `.txt`, or a file with no extension at all are read for what they are.
gzip is recognised by its magic bytes whatever the name (`.csv.gz`, `.jsonl.gz`, `.txt.gz`, ...).

>>> sniff_format("label;text\\r\\npos;fine, really\\r\\n", "csv")
'csv'
>>> delimiter_of("label;text\\r\\npos;fine, really\\r\\n", "csv")
';'
>>> sniff_format("__label__pos a fine film\\n", None)
'fasttext'
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import zlib
from pathlib import Path

from lstmkit.data.dataset import decode_text
from lstmkit.data.imdb import read_bytes
from lstmkit.errors import LstmkitError

FORMATS = ("csv", "tsv", "jsonl", "fasttext", "txt")

SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".txt": "txt",
}

DELIMITERS = {"csv": (",", ";", "|"), "tsv": ("\t",)}

FASTTEXT_LABEL = "__label__"

GZIP_MAGIC = b"\x1f\x8b"

SAMPLE_RECORDS = 200  # rows read to sniff a delimiter: enough to see a stray one, quick on any file

SAMPLE_CHARS = 1 << 20  # at most this much text is sniffed (a cut last row is dropped)


def suffix_format(path: Path) -> str | None:
    """The format the file's name says, a `.gz` ending set aside; None for no or an unknown extension.

    >>> suffix_format(Path("spam.tsv.gz")), suffix_format(Path("SMSSpamCollection"))
    ('tsv', None)
    """
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return SUFFIXES.get(suffixes[-1]) if suffixes else None


def read_text_file(path: Path) -> tuple[str, int]:
    """The whole file as text: gunzipped if it is gzip, decoded as UTF-8, without a byte-order mark.

    Returns (text, undecodable sequences replaced by U+FFFD). Binary content (a NUL byte, as in a
    spreadsheet or a zip) is an LstmkitError that says to export the data as text.
    """
    raw = read_bytes(path)
    if raw.startswith(GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise LstmkitError(
                f"{path.name} is a damaged gzip file ({e}); compress it again, or pass it unzipped"
            ) from None
    check_text(raw[:65536], path)
    text, replaced = decode_text(raw)
    return text.removeprefix("\ufeff"), replaced


def open_text(path: Path):
    """The file as a text stream, gunzipped if it is gzip, lines ending at "\\n" only, bad bytes replaced."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == GZIP_MAGIC
    raw = gzip.open(path, "rb") if gzipped else open(path, "rb")  # noqa: SIM115 (the wrapper closes it)
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="\n")


def peek_text(path: Path, size: int = 65536) -> str:
    """The first `size` bytes of the file's text (gunzipped, decoded, no byte-order mark), to sniff."""
    try:
        with open_text(path) as f:
            head = f.buffer.read(size)
    except (OSError, EOFError, zlib.error) as e:
        raise LstmkitError(f"cannot read {path} ({e}); check that it is a readable text or gzip file") from None
    check_text(head, path)
    return head.decode("utf-8", errors="replace").removeprefix("\ufeff")


def check_text(head: bytes, path: Path) -> None:
    if b"\x00" in head:
        raise LstmkitError(
            f"{path.name}: unknown file type (binary content, not text); export it as CSV, TSV, JSON Lines or fastText"
        )


def sniff_format(text: str, hint: str | None) -> str | None:
    """The format the content shows, or None when it shows none; `hint` (from the name) breaks ties.

    JSON objects or an array of them: "jsonl". A first line starting `__label__`: "fasttext". Rows
    that all split into the same number (2 or more) of fields at one delimiter: "tsv" or "csv".
    """
    head = text[:65536]  # enough to tell; splitting a whole large file would copy it
    lines = [line for line in head.splitlines()[:20] if line.strip()]
    if not lines:
        return None
    if head.lstrip().startswith("[") or _is_json_object(lines[0]):
        return "jsonl"
    if lines[0].lstrip().startswith(FASTTEXT_LABEL):
        return "fasttext"
    delimiter = delimiter_of(text, hint)
    if delimiter is None:
        return None
    return "tsv" if delimiter == "\t" else "csv"


def delimiter_of(text: str, file_format: str | None) -> str | None:
    """The delimiter at which the first rows split into the same number of fields (at least two).

    file_format "csv" tries comma, semicolon and pipe, "tsv" tab, None all four (tab first). Several
    that fit, with nothing to choose between them, is an LstmkitError naming --format.
    """
    candidates = DELIMITERS.get(file_format) or ("\t", ",", ";", "|")
    if file_format == "csv":  # a misnamed tab-separated file: the tab is the last resort
        candidates = (*candidates, "\t")
    fits = [d for d in candidates if d in text and _consistent(text, d)]
    if file_format is None and len(fits) > 1:
        names = " and ".join(repr(d) for d in fits)
        raise LstmkitError(
            f"the rows split evenly at both {names}; say which with --format tsv (tabs) or --format csv (commas, semicolons)"
        )
    return fits[0] if fits else None


def _consistent(text: str, delimiter: str) -> bool:
    """Whether the first rows all have the same number (>= 2) of fields, quoted or read literally."""
    head = text[:SAMPLE_CHARS]  # the csv reader's StringIO would copy a whole large file
    for quoting in (csv.QUOTE_MINIMAL, csv.QUOTE_NONE):
        try:
            sample = list(itertools.islice(records(head, delimiter, quoting), SAMPLE_RECORDS + 1))
        except csv.Error:
            continue
        if len(sample) > 1:
            sample = sample[:-1]  # a sample may end inside its last row
        counts = {len(fields) for _, fields in sample}
        if len(counts) == 1 and counts.pop() >= 2:
            return True
    return False


def records(text: str, delimiter: str, quoting: int = csv.QUOTE_MINIMAL):
    """(line number, fields) of each non-blank row, read by Python's csv module (CRLF or LF)."""
    csv.field_size_limit(2**31 - 1)  # reviews longer than csv's 128 KiB default are fine
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    try:
        for fields in reader:
            if fields and fields != [""]:
                yield reader.line_num, fields
    except csv.Error as e:
        raise csv.Error(f"line {reader.line_num}: {e}") from None


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False
