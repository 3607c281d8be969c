"""A corpus larger than memory: a user's file vectorized once into a cached token folder.

Shape legend: K texts kept (the file's rows less the empty ones), V vocabulary.

`load_corpus` streams the file (`lstmkit.data.rows`) in three passes, none of which holds the
texts; what grows with the number of texts is a few bytes each (labels, offsets, row flags):

    1. labels   each row's label, parsed as `load_table` parses them (same errors, same rows),
                and whether its text is empty (dropped, as `load_table` drops them);
    2. words    the vectorizer adapts, a chunk of texts at a time, to the rows the caller picks
                (training's split): `TextVectorizer.adapt_chunks`, the vocabulary `adapt` gives;
    3. ids      every kept text encoded, a chunk at a time, into a token folder
                (`lstmkit.data.token_file`), with the labels and the vocabulary.

The folder is cached in LSTMKIT_HOME/token-files/, named by a key: the SHA-256 of the file's bytes,
how it is read (columns, format, header), the vectorizer's config, the length the ids are cut at,
and where the vocabulary comes from (the split that picks the adapting rows, or a given
vocabulary's SHA-256). A second run with the same key opens the folder, checks its files' sizes
and SHA-256, and skips all three passes; a damaged folder is built again. A file that changes
while it is read is an LstmkitError (the folder would not match its key).

    >>> corpus = load_corpus(Path("reviews.csv"), {}, vectorizer, vocabulary_rows=train_rows)  # doctest: +SKIP
    >>> len(corpus.rows), corpus.class_names  # doctest: +SKIP
    (2000000, ['neg', 'pos'])
"""

from __future__ import annotations

import hashlib
import itertools
import json
import warnings
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmkit.atomic import sha256
from lstmkit.data.dataset import DataWarning, parse_labels
from lstmkit.data.rows import open_rows
from lstmkit.data.token_file import FORMAT, TokenRows, open_token_folder, write_token_folder
from lstmkit.errors import LstmkitError
from lstmkit.paths import lstmkit_home

CHUNK_TEXTS = 4096  # texts vectorized at once: large enough for the vectorizer's speed, small in memory


@dataclass
class Corpus:
    """A file's kept texts as token rows (K,), in file order, with labels int64 (K,) and classes."""

    rows: TokenRows
    labels: np.ndarray
    class_names: list[str]
    vocabulary: list[str]
    empty: int  # empty texts dropped
    cached: bool  # opened from the cache, nothing vectorized


def token_cache_dir() -> Path:
    """Where token folders are kept: LSTMKIT_HOME/token-files."""
    return lstmkit_home() / "token-files"


def load_corpus(
    path,
    reading: dict,
    vectorizer,
    *,
    vocabulary_rows=None,
    vocabulary_from=None,
    max_length=None,
    min_classes=2,
    cache_dir=None,
) -> Corpus:
    """The file at `path` as a `Corpus`, from the cache or vectorized now (see the module's docstring).

    reading: text_column, label_column, file_format and header, as `load_table` takes them.
    vectorizer: a `TextVectorizer`; with vocabulary_rows, it adapts to the texts of the rows that
    vocabulary_rows(labels (K,), class_names) marks True (bool (K,)), and vocabulary_from (JSON-able)
    says which those are, for the key; without, it already has its vocabulary and encodes with it.
    max_length: tokens kept per text (None: the vectorizer's sequence length; 0: all).
    """
    path = Path(path)
    before = _stamp(path)
    fixed = (
        None if vocabulary_rows is not None else hashlib.sha256("\n".join(vectorizer.vocabulary).encode()).hexdigest()
    )
    key = _key(
        path, reading, vectorizer, max_length, vocabulary_from if fixed is None else {"vocabulary_sha256": fixed}
    )
    folder = Path(cache_dir or token_cache_dir()) / key[:40]
    opened = open_token_folder(folder) if folder.exists() else None
    if opened is not None and opened.meta.get("key") == key:
        if fixed is None:
            vectorizer.set_vocabulary(opened.meta["vocabulary"])
        meta = opened.meta
        return Corpus(opened.rows, opened.labels, meta["class_names"], meta["vocabulary"], meta["empty"], True)
    if folder.exists():
        print(f"token cache {folder} is damaged (a file's size or SHA-256 is wrong); building it again", flush=True)
    reader = open_rows(path, **reading)
    labels, kept, class_names, empty = _scan_labels(reader, path, min_classes)
    _check_unchanged(path, before)
    if vocabulary_rows is not None:
        adapting = np.zeros(len(kept), bool)
        adapting[np.flatnonzero(kept)] = np.asarray(vocabulary_rows(labels, class_names), bool)
        vectorizer.adapt_chunks(_text_chunks(reader, adapting))
        _check_unchanged(path, before)
    chunks = _id_chunks(reader, kept, labels, vectorizer, max_length, lambda: _check_unchanged(path, before))
    meta = {
        "key": key,
        "source": str(path),
        "class_names": class_names,
        "vocabulary": vectorizer.vocabulary,
        "empty": empty,
    }
    folder_ = write_token_folder(folder, chunks, meta)
    return Corpus(folder_.rows, folder_.labels, class_names, vectorizer.vocabulary, empty, False)


def _key(path, reading, vectorizer, max_length, vocabulary) -> str:
    """SHA-256 of everything the token folder depends on (the data by its bytes)."""
    described = {
        "format": FORMAT,
        "data_sha256": sha256(path),
        "reading": {k: reading.get(k) for k in sorted(reading)},
        "vectorizer": vectorizer.get_config(),
        "max_length": max_length,
        "vocabulary": vocabulary,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _check_unchanged(path: Path, before) -> None:
    if _stamp(path) != before:
        raise LstmkitError(f"{path} changed while it was read; run again once nothing writes to it")


def _scan_labels(reader, path: Path, min_classes: int):
    """(labels int64 (K,), kept bool (rows,), class names, empty count): pass 1, no text kept.

    Labels parse as `parse_labels` parses a column (it reads them one at a time here), and empty
    texts are dropped after, with `drop_empty`'s warning, as `load_table` does."""
    codes, empty_rows, distinct = array("i"), bytearray(), {}
    values = []
    for i, (text, label) in enumerate(reader):
        if text is not None and not isinstance(text, str):
            raise LstmkitError(
                f"{path.name} row {i + 1}: text is a {type(text).__name__}, not a string; choose the text column with --text-column"
            )
        empty_rows.append(not (text or "").strip())
        try:
            code = distinct.setdefault((type(label), label), len(distinct))
        except TypeError:  # a list or dict: parse_labels names its row and why
            if isinstance(label, (list, tuple)):
                raise LstmkitError(
                    f"{path.name} row {i + 1} has several labels ({', '.join(map(str, label))}): multi-label data; "
                    "--stream reads one label per text, so train it without --stream"
                ) from None
            code = distinct.setdefault((type(label), repr(label)), len(distinct))
        if code == len(values):
            values.append(label)
        codes.append(code)
    if not codes:
        raise LstmkitError(f"{path} holds no rows; the dataset is empty")
    labels, class_names = parse_labels((values[c] for c in codes), path.name, min_classes)
    kept = ~np.frombuffer(bytes(empty_rows), dtype=bool)
    empty = int(len(kept) - kept.sum())
    if empty == len(kept):
        raise LstmkitError(f"{path}: every text is empty; the dataset is empty (check the text column)")
    if empty:
        warnings.warn(
            DataWarning(f"{path}: dropped {empty} empty text{'s' * (empty != 1)} of {len(kept)}"), stacklevel=3
        )
        if len(np.unique(labels[kept])) < min_classes:
            raise LstmkitError(
                f"{path}: after dropping empty texts only one class is left; a classifier needs at least two"
            )
    return labels[kept], kept, class_names, empty


def _text_chunks(reader, wanted):
    """The texts of the rows `wanted` marks (bool per row of the file), CHUNK_TEXTS at a time."""
    flags = iter(wanted)
    texts = (text for (text, _), want in zip(reader, flags) if want)
    while chunk := list(itertools.islice(texts, CHUNK_TEXTS)):
        yield chunk


def _id_chunks(reader, kept, labels, vectorizer, max_length, check):
    """Pass 3: (ids int32, lengths int64, labels int64) per chunk of kept texts, in file order;
    `check()` after the last, so a file changed meanwhile never becomes a cached folder."""
    done = 0
    for chunk in _text_chunks(reader, kept):
        flat, lengths = vectorizer.encode_flat(chunk, max_length)
        yield flat, lengths, labels[done : done + len(chunk)]
        done += len(chunk)
    if done != len(labels):
        raise LstmkitError(f"{reader.path} changed while it was read; run again once nothing writes to it")
    check()
