"""The user's own labeled files: CSV, TSV, JSON Lines, fastText, and folders with one sub-folder per class."""

from __future__ import annotations

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
from lstmkit.data.multilabel import LABEL_SEPARATOR, is_label_set, parse_label_sets
from lstmkit.data.tables import choose_columns, read_table
from lstmkit.errors import LstmkitError


def load_table(
    path: Path,
    text_column: str | None,
    label_column: str | None,
    min_classes: int = 2,
    *,
    file_format: str | None = None,
    header: bool | None = None,
    multi_label: bool | None = None,
) -> Dataset:
    """A CSV, TSV, JSON Lines or fastText file (gzipped or not): one text and one label per row,
    or a set of labels (`lstmkit.data.multilabel`).

    file_format: None sniffs it from the content (see `lstmkit.data.formats`); header: None
    detects whether a delimited file's first row names its columns (see `lstmkit.data.tables`).
    Columns are chosen by name or 0-based index. multi_label: None reads label sets where the file
    has them (lists, several __label__s), True always (a CSV/TSV cell's labels split at "|"), False never.
    """
    named = any(c is not None and not c.strip().isdigit() for c in (text_column, label_column))
    table = read_table(path, file_format=file_format, header=header, named=named)
    if not table.rows:
        raise LstmkitError(f"{path} holds no rows; the dataset is empty")
    text_key, label_key = choose_columns(table, path, text_column, label_column)
    if text_key == label_key:
        raise LstmkitError(
            f"{path.name}: the text and label columns are both '{text_key}'; choose two different columns"
        )
    texts = []
    for i, row in enumerate(table.rows):
        value = row.get(text_key)
        if value is not None and not isinstance(value, str):
            raise LstmkitError(
                f"{path.name} row {i + 1}: text is a {type(value).__name__}, not a string; choose the text column with --text-column"
            )
        texts.append(value or "")
    raw = [row.get(label_key) for row in table.rows]
    if multi_label or (multi_label is None and any(is_label_set(v) for v in raw)):
        separator = LABEL_SEPARATOR if table.file_format in ("csv", "tsv") else None
        labels, class_names = parse_label_sets(raw, path.name, min_classes, separator=separator)
    else:
        labels, class_names = parse_labels(raw, path.name, min_classes)
    ds = Dataset(
        texts,
        labels,
        class_names,
        source=str(path),
        ids=[str(i + 1) for i in range(len(table.rows))],
        replaced=table.replaced,
    )
    warn_replaced(ds)
    return drop_empty(ds, min_classes)


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
