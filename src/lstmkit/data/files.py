"""The user's own labeled files: CSV, TSV, JSON Lines, and folders with one sub-folder per class."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from lstmkit.data.dataset import (
    Dataset,
    decode_text,
    drop_empty,
    parse_labels,
    warn_replaced,
)
from lstmkit.data.imdb import check_inside, read_bytes
from lstmkit.errors import LstmkitError

TEXT_COLUMNS = ("text", "review", "sentence", "content", "document", "body", "comment", "tweet", "message")


LABEL_COLUMNS = ("label", "sentiment", "class", "target", "category", "labels", "y")


def load_table(path: Path, text_column: str | None, label_column: str | None, min_classes: int = 2) -> Dataset:
    """A CSV, TSV or JSON Lines file with a header / keys: one text and one label per row."""
    suffix = path.suffix.lower()
    text, replaced = decode_text(read_bytes(path))
    text = text.removeprefix("\ufeff")
    if suffix in (".csv", ".tsv", ".tab"):
        columns, rows = read_delimited(text, "\t" if suffix != ".csv" else ",", path)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        columns, rows = read_json_lines(text, path)
    else:
        raise LstmkitError(
            f"{path.name}: unknown file type '{suffix}'; use .csv, .tsv, .jsonl, or a folder with one sub-folder per class"
        )
    if not rows:
        raise LstmkitError(f"{path} holds no rows; the dataset is empty")
    text_key = pick_column(columns, text_column, TEXT_COLUMNS, "text", path)
    label_key = pick_column(columns, label_column, LABEL_COLUMNS, "label", path)
    if text_key == label_key:
        raise LstmkitError(
            f"{path.name}: the text and label columns are both '{text_key}'; choose two different columns"
        )
    texts = []
    for i, row in enumerate(rows):
        value = row.get(text_key)
        if value is not None and not isinstance(value, str):
            raise LstmkitError(
                f"{path.name} row {i + 1}: text is a {type(value).__name__}, not a string; choose the text column with --text-column"
            )
        texts.append(value or "")
    labels, class_names = parse_labels([row.get(label_key) for row in rows], path.name, min_classes)
    ds = Dataset(
        texts, labels, class_names, source=str(path), ids=[str(i + 1) for i in range(len(rows))], replaced=replaced
    )
    warn_replaced(ds)
    return drop_empty(ds, min_classes)


def _encodes(text: str) -> bool:
    """Whether a text can be written as UTF-8 (a JSON escape like "\\ud800" gives one that cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_delimited(text: str, delimiter: str, path: Path) -> tuple[list[str], list[dict]]:
    csv.field_size_limit(2**31 - 1)  # reviews longer than csv's 128 KiB default are fine
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            raise LstmkitError(f"{path} is empty; the dataset needs a header row and at least one row per class")
        header = [h.strip() for h in header]
        twice = sorted({h for h in header if header.count(h) > 1})
        if twice:
            raise LstmkitError(
                f"{path.name}: the header names column '{twice[0]}' more than once; give each column its own name"
            )
        rows = []
        for line in reader:
            if not line or line == [""]:
                continue
            if len(line) != len(header):
                raise LstmkitError(
                    f"{path.name} line {reader.line_num}: {len(line)} fields where the header has {len(header)}; quote texts that hold the delimiter"
                )
            rows.append(dict(zip(header, line)))
    except csv.Error as e:
        raise LstmkitError(f"{path.name} line {reader.line_num}: {e}; check the quoting") from None
    return header, rows


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
        where = f"line {n}" if not stripped.startswith("[") else f"line {e.lineno}"
        raise LstmkitError(f"{path.name} {where} is not valid JSON ({e.msg}); write one JSON object per line") from None
    except RecursionError:  # json's decoder recurses once per level of nesting
        where = f"line {n}" if not stripped.startswith("[") else "the array"
        raise LstmkitError(
            f"{path.name} {where} nests its JSON too deeply to read; write one flat object per line"
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


def pick_column(columns: list[str], chosen: str | None, candidates, role: str, path: Path) -> str:
    flag = f"--{role}-column"
    if chosen is not None:
        if chosen in columns:
            return chosen
        raise LstmkitError(
            f"{path.name} has no column '{chosen}' (columns: {', '.join(columns)}); pass one of them with {flag}"
        )
    lower = {c.lower().strip(): c for c in columns}
    for name in candidates:
        if name in lower:
            return lower[name]
    raise LstmkitError(
        f"{path.name}: no {role} column found among {', '.join(columns) or '(none)'}; name it with {flag}"
    )


def load_class_folders(path: Path, min_classes: int = 2) -> Dataset:
    """A folder with one sub-folder per class, each holding .txt files (one text per file)."""
    classes = sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise LstmkitError(
            f"{path} has no sub-folders; put each class's .txt files in a sub-folder named after the class"
        )
    root = path.resolve()
    texts, labels, ids, replaced = [], [], [], 0
    for label, name in enumerate(classes):
        for folder, dirs, files in sorted(os.walk(path / name)):
            dirs.sort()
            for file in sorted(files):
                if not file.endswith(".txt") or file.startswith("."):
                    continue
                file_path = Path(folder) / file
                check_inside(root, file_path)  # a linked file, or a linked folder above it, must stay inside
                text, bad = decode_text(read_bytes(file_path))
                texts.append(text)
                labels.append(label)
                ids.append(str(file_path.relative_to(path)))
                replaced += bad
    if not texts:
        raise LstmkitError(
            f"{path} holds no .txt files in its class sub-folders ({', '.join(classes)}); the dataset is empty"
        )
    counts = np.bincount(labels, minlength=len(classes))
    if np.count_nonzero(counts) < min_classes:
        raise LstmkitError(
            f"{path}: only class '{classes[int(np.argmax(counts))]}' has .txt files; a classifier needs at least two classes"
        )
    ds = Dataset(texts, np.array(labels, dtype=np.int64), classes, source=str(path), ids=ids, replaced=replaced)
    warn_replaced(ds)
    return drop_empty(ds, min_classes)
