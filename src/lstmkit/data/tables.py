"""The user's file as a table: column names and rows, whatever its format, with a header row or not.

A delimited file's first row is its header unless it looks like data: a cell that is one of the
labels seen below it, a number over a column of numbers, or prose (more than five words, forty
characters, or punctuation between words). `header=False` (`--no-header`) says so. Without a header, columns are named by
position, "0", "1", ...; `--text-column 1 --label-column 0` picks them (an index works on a file
with a header too), and without them the text is the column with the longest cells and the label
the other column with the fewest distinct values.

>>> table = parse_table("ham\\tsee you soon\\nspam\\tWIN a prize now\\nham\\tok\\n", "tsv", Path("sms"))
>>> table.header, table.columns, choose_columns(table, Path("sms"), None, None, verbose=False)
(False, ['0', '1'], ('1', '0'))
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

from lstmkit.data.formats import (
    FASTTEXT_LABEL,
    SAMPLE_RECORDS,
    delimiter_of,
    read_text_file,
    records,
    sniff_format,
    suffix_format,
)
from lstmkit.errors import LstmkitError

TEXT_COLUMNS = ("text", "review", "sentence", "content", "document", "body", "comment", "tweet", "message")

LABEL_COLUMNS = ("label", "sentiment", "class", "target", "category", "labels", "y")

FORMAT_FLAG = "--format csv|tsv|jsonl|fasttext"


@dataclass
class Table:
    """columns: names in order ("0", "1", ... without a header); rows: one dict per row."""

    columns: list[str]
    rows: list[dict]
    header: bool = True
    file_format: str = "csv"
    replaced: int = 0


def read_table(path: Path, *, file_format=None, header=None, named=False, labeled=True) -> Table:
    """The file at `path` as a Table; `named`: the user chose columns by name, so there is a header."""
    text, replaced = read_text_file(path)
    file_format = table_format(path, text, file_format, labeled)
    table = parse_table(text, file_format, path, header=header, named=named, labeled=labeled)
    table.replaced = replaced
    return table


def table_format(path: Path, text: str, given: str | None, labeled: bool = True) -> str:
    """The format to read `text` in: `given` (--format), else what the content shows, else the name's."""
    if given == "txt" and labeled:
        raise LstmkitError(
            f"--format txt is one text per line, with no labels; give {path.name}'s labels as fastText's __label__CLASS or a label column"
        )
    if given is not None:
        return given
    if not text or text.isspace():
        raise LstmkitError(f"{path} is empty; the dataset needs at least one row per class")
    hint = suffix_format(path)
    sniffed = sniff_format(text, hint)
    if sniffed is not None:
        return sniffed
    if hint in ("csv", "tsv", "jsonl"):  # reading it as named gives the precise error
        return hint
    raise LstmkitError(
        f"{path.name}: unknown file type (not JSON Lines, fastText, or rows that split evenly at a tab, comma, semicolon or pipe); say the format with {FORMAT_FLAG}"
    )


def parse_table(text: str, file_format: str, path: Path, *, header=None, named=False, labeled=True) -> Table:
    if file_format == "jsonl":
        return Table(*read_json_lines(text, path), file_format="jsonl")
    if file_format == "fasttext":
        return Table(["label", "text"], read_fasttext(text, path, labeled), file_format="fasttext")
    delimiter = delimiter_of(text, file_format) or ("\t" if file_format == "tsv" else ",")
    return read_delimited(text, delimiter, path, header=header, named=named, file_format=file_format)


def read_delimited(text: str, delimiter: str, path: Path, *, header=None, named=False, file_format="csv") -> Table:
    """Rows split at `delimiter` by the csv module; the first is the header unless it looks like data."""
    rows = _records(text, delimiter, path)
    if not rows:
        raise LstmkitError(f"{path} is empty; the dataset needs a header row and at least one row per class")
    first = [cell.strip() for cell in rows[0][1]]
    if header is None:
        header = named or first_row_is_header(first, [fields for _, fields in rows[1 : SAMPLE_RECORDS + 1]])
    columns = first if header else [str(i) for i in range(len(first))]
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise LstmkitError(
            f"{path.name}: the header names column '{twice[0]}' more than once; give each column its own name"
        )
    for line, fields in rows[int(header) :]:
        if len(fields) != len(columns):
            where = "the header has" if header else "line 1 has"
            raise LstmkitError(
                f"{path.name} line {line}: {len(fields)} fields where {where} {len(columns)}; quote texts that hold the delimiter"
            )
    data = [dict(zip(columns, fields)) for _, fields in rows[int(header) :]]
    return Table(columns, data, header=bool(header), file_format=file_format)


def _records(text: str, delimiter: str, path: Path) -> list[tuple[int, list[str]]]:
    """Every row, quotes read as CSV does; literally instead when a stray quote swallowed line ends.

    A tab-separated file often holds texts that start with a quote and never close it (the SMS
    spam collection does); read as CSV, such a quote would join lines into one text.
    """
    try:
        quoted = list(records(text, delimiter))
    except csv.Error as e:
        quoted, error = None, e
    joined = quoted is None or any("\n" in field for _, fields in quoted for field in fields)
    if joined and '"' in text:  # only a quoted field can hold a line end
        plain = list(records(text, delimiter, csv.QUOTE_NONE))
        fits = len({len(fields) for _, fields in plain}) == 1
        if fits and (quoted is None or len(plain) > len(quoted)):
            return plain
    if quoted is None:
        raise LstmkitError(f"{path.name} {error}; check the quoting") from None
    return quoted


def first_row_is_header(first: list[str], below: list[list[str]]) -> bool:
    """Whether a delimited file's first row names its columns (see the module's docstring).

    >>> first_row_is_header(["label", "text"], [["pos", "fine"]]), first_row_is_header(["pos", "ok"], [["pos", "x"], ["neg", "y"]])
    (True, False)
    """
    known = {name for name in TEXT_COLUMNS + LABEL_COLUMNS}
    if any(cell.lower() in known for cell in first):
        return True
    for j, cell in enumerate(first):
        column = [fields[j].strip() for fields in below if j < len(fields)]
        if len(cell.split()) > 5 or len(cell) > 40 or _CLAUSE.search(cell):
            return False  # prose, not a column name
        if cell in column and len(set(column)) <= max(2, len(column) // 2):
            return False  # one of the labels below
        if column and _NUMBER.fullmatch(cell) and all(_NUMBER.fullmatch(v) for v in column):
            return False
    return True


_CLAUSE = re.compile(r"\w[,.;:!?]+\s+\w")  # "fine, really": punctuation between words, as in a sentence

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def read_json_lines(text: str, path: Path) -> tuple[list[str], list[dict]]:
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):  # a plain JSON array of objects is accepted too
            rows = json.loads(text)
            where = [f"row {i}" for i in range(1, len(rows) + 1)] if isinstance(rows, list) else []
        else:
            rows, where = [], []
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    rows.append(json.loads(line))
                    where.append(f"line {n}")
    except json.JSONDecodeError as e:
        at = f"line {n}" if not stripped.startswith("[") else f"line {e.lineno}"
        raise LstmkitError(f"{path.name} {at} is not valid JSON ({e.msg}); write one JSON object per line") from None
    except RecursionError:  # json's decoder recurses once per level of nesting
        at = f"line {n}" if not stripped.startswith("[") else "the array"
        raise LstmkitError(
            f"{path.name} {at} nests its JSON too deeply to read; write one flat object per line"
        ) from None
    if not all(isinstance(r, dict) for r in rows):
        raise LstmkitError(f'{path.name}: every line must be a JSON object like {{"text": ..., "label": ...}}')
    for row, at in zip(rows, where):
        if not all(_encodes(v) for v in row.values() if isinstance(v, str)):
            raise LstmkitError(
                f"{path.name} {at}: a text holds a lone surrogate (such as \\ud800), which is not valid UTF-8 "
                "and could not be saved; fix or remove that row"
            )
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return columns, rows


def _encodes(text: str) -> bool:
    """Whether a text can be written as UTF-8 (a JSON escape like "\\ud800" gives one that cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_fasttext(text: str, path: Path, labeled: bool = True) -> list[dict]:
    """fastText's lines, `__label__CLASS text`: {"label", "text"} per non-blank line.

    labeled: every line needs a label; a line with several gets them as a list (multi-label,
    `lstmkit.data.multilabel`). Otherwise the labels are dropped and only the texts count.

    >>> read_fasttext("__label__pos  a fine film\\r\\n__label__a __label__b x", Path("x"))
    [{'label': 'pos', 'text': 'a fine film'}, {'label': ['a', 'b'], 'text': 'x'}]
    """
    rows = []
    for n, line in enumerate(text.split("\n"), 1):
        rest, labels = line.strip(), []
        while rest.startswith(FASTTEXT_LABEL):
            label, _, rest = rest.partition(" ")
            labels.append(label.removeprefix(FASTTEXT_LABEL))
            rest = rest.lstrip()
        if not labels and not rest:
            continue
        if labeled and not labels:
            raise LstmkitError(
                f"{path.name} line {n} has no {FASTTEXT_LABEL} label; start every line with {FASTTEXT_LABEL}CLASS (fastText's format)"
            )
        label = (labels[0] if len(labels) == 1 else labels) if labels else None
        rows.append({"label": label, "text": rest})
    return rows


def choose_columns(table: Table, path: Path, text_column, label_column, *, labeled=True, verbose=True):
    """(text key, label key or None): the chosen columns (names or 0-based indexes), else the usual
    names, else (a file without a header) the longest cells' column and the fewest labels'."""
    if text_column is not None or table.header:
        text_key = pick_column(table, text_column, TEXT_COLUMNS, "text", path)
    else:
        text_key = max(table.columns, key=lambda c: _mean_length(table.rows, c))
    if not labeled:
        return text_key, None
    others = [c for c in table.columns if c != text_key]
    if label_column is not None or table.header or not others:
        label_key = pick_column(table, label_column, LABEL_COLUMNS, "label", path)
    else:
        label_key = min(others, key=lambda c: len({row.get(c) for row in table.rows[:1000]}))
    if verbose and not table.header and (text_column is None or label_column is None):
        print(
            f"{path.name}: no header row; the text is column {text_key}, the label column {label_key} "
            "(0-based; --text-column and --label-column choose others)",
            flush=True,
        )
    return text_key, label_key


def pick_column(table: Table, chosen: str | None, candidates, role: str, path: Path) -> str:
    """The column `chosen` names (or indexes, from 0), else the first of `candidates` present."""
    columns, flag = table.columns, f"--{role}-column"
    if chosen is not None:
        if chosen in columns:
            return chosen
        if re.fullmatch(r"\d+", chosen.strip()) and int(chosen) < len(columns):
            return columns[int(chosen)]
        raise LstmkitError(
            f"{path.name} has no column '{chosen}' (columns: {', '.join(columns)}); pass a name or a 0-based index with {flag}"
        )
    lower = {c.lower().strip(): c for c in columns}
    for name in candidates:
        if name in lower:
            return lower[name]
    no_header = ", or --no-header if its first row is data" if table.file_format in ("csv", "tsv") else ""
    raise LstmkitError(
        f"{path.name}: no {role} column found among {', '.join(columns) or '(none)'}; name it with {flag} (a name or a 0-based index){no_header}"
    )


def _mean_length(rows: list[dict], column: str) -> float:
    sample = rows[:1000]
    return sum(len(str(row.get(column) or "")) for row in sample) / max(len(sample), 1)
