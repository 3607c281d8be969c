"""A user's labeled file read row by row: (text, label) pairs streamed from disk, never all held.

The format, the header and the columns are decided as `lstmkit.data.files.load_table` decides
them, on the file's first MiB (`lstmkit.data.tables`): the same sniffing, the same header rule,
the same column choice and its message. The rows then stream from the file, gunzipped on the
fly when it is gzip, one at a time: CSV and TSV through Python's csv reader, JSON Lines and
fastText a line at a time. What cannot stream is refused with the fix: one JSON array (JSON
Lines can). Undecodable bytes are replaced by U+FFFD, as `load_table` does, but not counted.

    >>> reader = open_rows(Path("reviews.csv"), None, None)  # doctest: +SKIP
    >>> next(iter(reader))  # doctest: +SKIP
    ('A fine film.', 'pos')
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from lstmkit.data.formats import SAMPLE_CHARS, delimiter_of, open_text, peek_text, records
from lstmkit.data.tables import choose_columns, parse_table, read_fasttext, table_format
from lstmkit.errors import LstmkitError


@dataclass(frozen=True)
class RowReader:
    """How to stream one file's rows; iterating it reads the file once, yielding (text, label).

    text: the text column's value (a str, None when the row lacks it, or whatever a JSON line
    holds there); label: the label column's raw value, for `lstmkit.data.dataset.parse_labels`.
    """

    path: Path
    file_format: str
    text_key: str
    label_key: str
    columns: tuple[str, ...] = ()
    header: bool = False
    delimiter: str = ","
    quoting: int = csv.QUOTE_MINIMAL

    def __iter__(self):
        if self.file_format == "jsonl":
            return self._json_lines()
        if self.file_format == "fasttext":
            return self._fasttext()
        return self._delimited()

    def _delimited(self):
        text_at, label_at = self.columns.index(self.text_key), self.columns.index(self.label_key)
        name, width, skip = self.path.name, len(self.columns), self.header
        with open_text(self.path) as f:
            reader = csv.reader(f, delimiter=self.delimiter, quoting=self.quoting)
            try:
                for fields in reader:
                    if not fields or fields == [""]:
                        continue
                    if skip:
                        skip = False
                        continue
                    if len(fields) != width:
                        where = "the header has" if self.header else "line 1 has"
                        raise LstmkitError(
                            f"{name} line {reader.line_num}: {len(fields)} fields where {where} {width}; quote texts that hold the delimiter"
                        )
                    yield fields[text_at], fields[label_at]
            except csv.Error as e:
                raise LstmkitError(f"{name} line {reader.line_num}: {e}; check the quoting") from None

    def _json_lines(self):
        with open_text(self.path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise LstmkitError(
                        f"{self.path.name} line {n} is not valid JSON ({e.msg}); write one JSON object per line"
                    ) from None
                if not isinstance(row, dict):
                    raise LstmkitError(
                        f'{self.path.name}: every line must be a JSON object like {{"text": ..., "label": ...}}'
                    )
                yield row.get(self.text_key), row.get(self.label_key)

    def _fasttext(self):
        with open_text(self.path) as f:
            for n, line in enumerate(f, 1):
                try:
                    rows = read_fasttext(line, self.path)  # one line: the same rules, the same errors
                except LstmkitError as e:
                    raise LstmkitError(str(e).replace(" line 1 ", f" line {n} ", 1)) from None
                for row in rows:
                    yield row["text"], row["label"]


def open_rows(path: Path, text_column=None, label_column=None, *, file_format=None, header=None) -> RowReader:
    """A `RowReader` for the file at `path`, its format, header and columns decided from its first MiB."""
    path = Path(path)
    if path.is_dir():
        raise LstmkitError(
            f"{path} is a folder; --stream reads one CSV, TSV, JSON Lines or fastText file (train on class folders without --stream)"
        )
    head = peek_text(path, SAMPLE_CHARS)
    file_format = table_format(path, head, file_format)
    if file_format == "jsonl" and head.lstrip().startswith("["):
        raise LstmkitError(
            f"{path.name} is one JSON array, which cannot be read a row at a time; write it as JSON Lines (one object per line) for --stream"
        )
    cut = len(head.encode("utf-8", "surrogatepass")) >= SAMPLE_CHARS - 3  # a byte-order mark is 3 bytes
    if cut and "\n" in head:  # the file goes on: sniff whole lines only
        head = head[: head.rindex("\n") + 1]
    named = any(c is not None and not c.strip().isdigit() for c in (text_column, label_column))
    sample = parse_table(head, file_format, path, header=header, named=named)
    if not sample.rows:
        raise LstmkitError(f"{path} holds no rows; the dataset is empty")
    text_key, label_key = choose_columns(sample, path, text_column, label_column)
    if text_key == label_key:
        raise LstmkitError(
            f"{path.name}: the text and label columns are both '{text_key}'; choose two different columns"
        )
    if file_format in ("jsonl", "fasttext"):
        return RowReader(path, file_format, text_key, label_key)
    delimiter = delimiter_of(head, file_format) or ("\t" if file_format == "tsv" else ",")
    return RowReader(
        path,
        file_format,
        text_key,
        label_key,
        columns=tuple(sample.columns),
        header=sample.header,
        delimiter=delimiter,
        quoting=_quoting(head, delimiter),
    )


def _quoting(head: str, delimiter: str) -> int:
    """csv's quoting for the file, as `lstmkit.data.tables` chooses it: literal when a stray quote
    (a text that opens one and never closes it, common in TSV files) would join lines into one text."""
    if '"' not in head:
        return csv.QUOTE_MINIMAL
    try:
        quoted = list(records(head, delimiter))
    except csv.Error:
        quoted = None
    if quoted is not None and not any("\n" in field for _, fields in quoted for field in fields):
        return csv.QUOTE_MINIMAL
    plain = list(records(head, delimiter, csv.QUOTE_NONE))
    fits = len({len(fields) for _, fields in plain}) == 1
    return csv.QUOTE_NONE if fits and (quoted is None or len(plain) > len(quoted)) else csv.QUOTE_MINIMAL
