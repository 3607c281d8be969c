"""A vectorized corpus on disk: every text's token ids back to back, memory-mapped, and its labels.

Shape legend: K texts in the file, T tokens in all, N rows of a view.

A token folder holds four files, written together and checked together:

    tokens.bin    int32 (T,)     text k's ids are tokens[offsets[k]:offsets[k + 1]]
    offsets.bin   int64 (K + 1,) offsets[0] = 0, offsets[K] = T
    labels.bin    int64 (K,)     each text's label, an index into meta.json's class_names
    meta.json     K, T, class names, the vocabulary, and each file's size and SHA-256

Flat ids plus offsets, not a padded (K, L) matrix: texts vary a lot in length (IMDB's reviews from
10 to 2,500 tokens), so the file holds only real tokens, and each text's length (what length
buckets sort by) is a difference of offsets, known without reading a token. Ids are stored up to
the longest any reader takes (training's sequence length, or evaluation's inference length when it
is longer); each batch cuts them to its own length, as it does ids held in memory.

`TokenRows` is a view of such a folder as a sequence of int32 arrays, `rows[i]`, with `rows.lengths`:
what `lstmkit.data.batching` reads instead of a list of arrays, touching only the rows it batches.

    >>> chunk = (np.array([5, 6, 7], np.int32), np.array([2, 1]), np.array([1, 0]))  # ids, lengths, labels
    >>> folder = write_token_folder(tmp / "t", [chunk], {"class_names": ["neg", "pos"]})  # doctest: +SKIP
    >>> [r.tolist() for r in folder.rows], folder.rows.lengths.tolist()  # doctest: +SKIP
    ([[5, 6], [7]], [2, 1])
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmkit.atomic import fsync_dir, sha256
from lstmkit.errors import LstmkitError

FORMAT = 1
ARRAYS = {"tokens.bin": np.int32, "offsets.bin": np.int64, "labels.bin": np.int64}
META = "meta.json"


class TokenRows:
    """Rows of a token file as a sequence: rows[i] is int32 (length_i,), a view into the file.

    index: which of the file's texts, in order (None: all of them); indexing with an array of
    positions gives another view (what `Dataset.subset` does). lengths: int64 (N,).
    """

    def __init__(self, tokens, offsets, index=None, *, vocabulary=None, key=""):
        self.tokens, self.offsets = tokens, offsets
        self.index = np.arange(len(offsets) - 1) if index is None else np.asarray(index, np.int64)
        self.lengths = (offsets[1:] - offsets[:-1])[self.index]
        self.vocabulary, self.key = vocabulary, key

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i):
        if isinstance(i, (int, np.integer)):
            k = self.index[i]
            return self.tokens[self.offsets[k] : self.offsets[k + 1]]
        return TokenRows(self.tokens, self.offsets, self.index[i], vocabulary=self.vocabulary, key=self.key)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def digest_parts(self):
        """What identifies these rows: the token folder's key and which of its texts, in order."""
        return self.key.encode(), self.index.tobytes()


@dataclass
class TokenFolder:
    """An opened token folder: every text's rows, their labels (K,), and meta.json's fields."""

    rows: TokenRows
    labels: np.ndarray
    meta: dict


def write_token_folder(folder: Path, chunks, meta: dict) -> TokenFolder:
    """Write a token folder from chunks of (flat ids int32, lengths int64, labels int64), atomically.

    The files go to a new folder beside `folder`, are flushed, and the folder is renamed into
    place: a crash leaves no half-written folder under the final name. One already there (another
    process's, or a damaged one that `open_token_folder` refused) is replaced.
    """
    folder = Path(folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    except OSError as e:
        raise LstmkitError(
            f"cannot write the token cache in {folder.parent} ({e.strerror}); set LSTMKIT_HOME to a writable folder"
        ) from None
    try:
        n_texts, n_tokens = _write_arrays(staging, chunks)
        files = {name: {"bytes": (staging / name).stat().st_size, "sha256": sha256(staging / name)} for name in ARRAYS}
        meta = {**meta, "format": FORMAT, "texts": n_texts, "tokens": n_tokens, "files": files}
        (staging / META).write_text(json.dumps(meta) + "\n", encoding="utf-8")
        fsync_dir(staging)
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
        fsync_dir(folder.parent)
    except OSError as e:
        raise LstmkitError(
            f"cannot write the token cache in {folder.parent} ({e.strerror}); free some space or set LSTMKIT_HOME to another folder"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return open_token_folder(folder)


def _write_arrays(staging: Path, chunks) -> tuple[int, int]:
    """Append each chunk's ids, offsets and labels to the three files; returns (K, T)."""
    n_texts = n_tokens = 0
    with (
        open(staging / "tokens.bin", "wb") as tokens,
        open(staging / "offsets.bin", "wb") as offsets,
        open(staging / "labels.bin", "wb") as labels,
    ):
        offsets.write(np.zeros(1, np.int64).tobytes())
        for flat, lengths, chunk_labels in chunks:
            tokens.write(np.ascontiguousarray(flat, np.int32).tobytes())
            offsets.write((n_tokens + np.cumsum(lengths, dtype=np.int64)).tobytes())
            labels.write(np.ascontiguousarray(chunk_labels, np.int64).tobytes())
            n_texts, n_tokens = n_texts + len(lengths), n_tokens + int(np.sum(lengths))
        for f in (tokens, offsets, labels):
            f.flush()
            os.fsync(f.fileno())
    return n_texts, n_tokens


def open_token_folder(folder: Path) -> TokenFolder | None:
    """The token folder at `folder`, memory-mapped; None when it is missing or damaged.

    Damaged: meta.json unreadable or of another format, or a file whose size or SHA-256 is not
    what meta.json says (a truncated copy, a disk error). The caller builds it again.
    """
    folder = Path(folder)
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
        files = meta["files"]
        expected = {
            "tokens.bin": 4 * meta["tokens"],
            "offsets.bin": 8 * (meta["texts"] + 1),
            "labels.bin": 8 * meta["texts"],
        }
        for name, size in expected.items():
            if files[name]["bytes"] != size or (folder / name).stat().st_size != size:
                return None
            if sha256(folder / name) != files[name]["sha256"]:
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if meta.get("format") != FORMAT:
        return None
    arrays = {name: _map(folder / name, dtype) for name, dtype in ARRAYS.items()}
    offsets = arrays["offsets.bin"]
    if offsets[0] != 0 or offsets[-1] != meta["tokens"] or np.any(np.diff(offsets) < 0):
        return None
    rows = TokenRows(arrays["tokens.bin"], offsets, vocabulary=meta.get("vocabulary"), key=meta.get("key", ""))
    return TokenFolder(rows, np.asarray(arrays["labels.bin"]), meta)


def _map(path: Path, dtype) -> np.ndarray:
    """The file as a read-only array; an empty file as an empty array (mmap cannot map 0 bytes)."""
    if path.stat().st_size == 0:
        return np.zeros(0, dtype)
    return np.memmap(path, dtype=dtype, mode="r")
