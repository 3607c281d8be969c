"""Datasets: IMDB (folder, archive or download) and the user's own labeled text, behind one loader.

Every loader returns a `Dataset`: texts (N,), integer labels (N,), class names, and metadata
(where it came from, how many undecodable byte sequences were replaced, how many empty texts
were dropped).

    load_dataset("imdb")                         downloads and caches the official archive
    load_dataset("aclImdb_v1.tar.gz", split="test")   read straight from the archive
    load_dataset("reviews.csv", text_column="body")   CSV, TSV, JSON Lines, or class folders
    train, val = train_val_split(ds, 0.1)        stratified and seeded

Examples come back in a seeded shuffled order. On disk IMDB is sorted by class, and a shuffle
buffer smaller than the data (the seed's 10,000 of 25,000) then serves runs of one label: a model
that follows the label drift shows 72% running train accuracy and 50% validation.

Bad input raises `LstmkitError` with a one-line message naming the problem and the fix; problems
that leave usable data (bad bytes, empty texts) give one `DataWarning` with the count.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import urllib.error
import urllib.request
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lstmkit.atomic import sha256
from lstmkit.errors import LstmkitError

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
IMDB_FILENAME = "aclImdb_v1.tar.gz"
IMDB_CLASSES = ["neg", "pos"]
IMDB_SPLITS = ("train", "test", "unsup")
UNLABELED = -1  # label of the unsup split's reviews

TEXT_COLUMNS = ("text", "review", "sentence", "content", "document", "body", "comment", "tweet", "message")
LABEL_COLUMNS = ("label", "sentiment", "class", "target", "category", "labels", "y")


class DataWarning(UserWarning):
    """Data was usable but not clean: bytes replaced or texts dropped (the message has counts)."""


@dataclass
class Dataset:
    """Labeled texts: texts[i] has label labels[i], an index into class_names.

    texts: list[str] (N,); labels: int64 (N,), -1 for unlabeled examples; class_names: the
    names of labels 0..C-1. Metadata: source (path or 'imdb'), split, ids (one per text: file
    name or row number), replaced (undecodable UTF-8 sequences replaced by U+FFFD) and empty
    (empty texts dropped).

    >>> ds = Dataset(["good", "bad"], np.array([1, 0]), ["neg", "pos"])
    >>> len(ds), ds.class_counts()
    (2, {'neg': 1, 'pos': 1})
    """

    texts: list[str]
    labels: np.ndarray
    class_names: list[str]
    source: str = ""
    split: str | None = None
    ids: list[str] | None = None
    replaced: int = 0
    empty: int = 0

    def __len__(self) -> int:
        return len(self.texts)

    def class_counts(self) -> dict[str, int]:
        """Examples per class name (unlabeled ones under 'unlabeled')."""
        counts = {name: int(np.sum(self.labels == i)) for i, name in enumerate(self.class_names)}
        if np.any(self.labels == UNLABELED):
            counts["unlabeled"] = int(np.sum(self.labels == UNLABELED))
        return counts

    def subset(self, indices) -> Dataset:
        """The examples at `indices`, in that order, with the same metadata."""
        indices = np.asarray(indices, dtype=np.int64)
        ids = None if self.ids is None else [self.ids[i] for i in indices]
        return replace(self, texts=[self.texts[i] for i in indices], labels=self.labels[indices], ids=ids)

    def shuffled(self, seed: int = 0) -> Dataset:
        """The same examples in a seeded random order."""
        return self.subset(np.random.default_rng(seed).permutation(len(self)))


# ---- the one loader --------------------------------------------------------------------------


def load_dataset(source, *, text_column: str | None = None, label_column: str | None = None, split: str | None = None, seed: int = 0, shuffle: bool = True) -> Dataset:
    """Load labeled texts from 'imdb', an IMDB folder or archive, a CSV/TSV/JSON Lines file, or a
    folder with one sub-folder per class.

    split: 'train' (default), 'test' or 'unsup' for IMDB; own files have no predefined split
    (leave it None or 'train' and use `train_val_split`). Examples are shuffled with `seed`
    unless shuffle=False.
    """
    if isinstance(source, str) and source.lower() == "imdb":
        return load_imdb(download_imdb(), split=split or "train", seed=seed, shuffle=shuffle)
    path = Path(source).expanduser()
    if not path.exists():
        raise LstmkitError(f"{path} does not exist; pass 'imdb', an aclImdb folder or .tar.gz, a .csv/.tsv/.jsonl file, or a folder of class sub-folders")
    if is_imdb(path):
        return load_imdb(path, split=split or "train", seed=seed, shuffle=shuffle)
    if split not in (None, "train"):
        raise LstmkitError(f"{path.name} has no predefined '{split}' split; load it whole and use train_val_split")
    if path.is_dir():
        ds = _load_class_folders(path)
    else:
        ds = _load_table(path, text_column, label_column)
    return ds.shuffled(seed) if shuffle else ds


def train_val_split(dataset: Dataset, val_fraction: float = 0.1, seed: int = 0, groups=None) -> tuple[Dataset, Dataset]:
    """Split into (train, validation), stratified by label and seeded; both come back shuffled.

    Each class gives round(n_c * val_fraction) examples to validation, so class proportions stay
    the same in both parts.

    groups: one key per example (e.g. `imdb_groups`); examples sharing a key go to the same part,
    whole groups are drawn per class until the class has its share. Validation then holds
    groups (on IMDB: movies) that training never saw, as a test split with new movies does.

    >>> ds = Dataset([str(i) for i in range(10)], np.array([0] * 5 + [1] * 5), ["a", "b"])
    >>> tr, va = train_val_split(ds, 0.2); len(tr), len(va), sorted(va.labels.tolist())
    (8, 2, [0, 1])
    """
    if not 0.0 < val_fraction < 1.0:
        raise LstmkitError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for label in np.unique(dataset.labels):
        members = rng.permutation(np.flatnonzero(dataset.labels == label))
        n_val = int(round(len(members) * val_fraction))
        if groups is not None:  # whole groups, in a random order
            keys = np.asarray([groups[i] for i in members])
            rank = {k: r for r, k in enumerate(rng.permutation(np.unique(keys)))}
            group_rank = np.array([rank[k] for k in keys])
            order = np.argsort(group_rank, kind="stable")
            members, group_rank = members[order], group_rank[order]
            if n_val:  # validation ends with the whole group that holds its n_val-th example
                n_val = int(np.sum(group_rank <= group_rank[n_val - 1]))
        val_idx.append(members[:n_val])
        train_idx.append(members[n_val:])
    train_idx = rng.permutation(np.concatenate(train_idx)) if train_idx else np.zeros(0, np.int64)
    val_idx = rng.permutation(np.concatenate(val_idx)) if val_idx else np.zeros(0, np.int64)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise LstmkitError(f"val_fraction={val_fraction} of {len(dataset)} examples leaves an empty part; use more data or another fraction")
    return dataset.subset(train_idx), dataset.subset(val_idx)


# ---- IMDB ------------------------------------------------------------------------------------

IMDB_GROUP_SIZE = 100


def imdb_groups(dataset: Dataset, size: int = IMDB_GROUP_SIZE) -> list[str] | None:
    """A group key per IMDB review that keeps reviews of one movie together, or None if the
    dataset's ids are not IMDB file names.

    The archive has no movie ids, but a class folder numbers a movie's reviews (at most 30)
    consecutively: train/pos/500_9.txt to 503_10.txt all review Star Trek: Enterprise. So blocks
    of `size` consecutive ids per class folder ('train/pos/5' for ids 500 to 599) hold whole
    movies, except those cut by a block boundary.
    """
    keys = []
    for name in dataset.ids or ():
        m = _IMDB_MEMBER.match(name)
        if m is None:
            return None
        keys.append(f"{m.group(1)}/{m.group(2)}/{int(m.group(3)) // size}")
    return keys or None

_IMDB_MEMBER = re.compile(r"^(?:\./)?(?:[^/]+/)?(train|test)/(pos|neg|unsup)/(\d+)_(\d+)\.txt$")


def load_imdb(path, split: str = "train", seed: int = 0, shuffle: bool = True) -> Dataset:
    """One IMDB split from an `aclImdb/` folder or a .tar.gz (read without extracting).

    split: 'train' or 'test' (25,000 reviews, labels neg=0 / pos=1) or 'unsup' (50,000 reviews,
    label -1). `path` may also be a folder holding the archives. Shuffled with `seed`.
    """
    return read_imdb(path, (split,), seed=seed, shuffle=shuffle)[split]


def read_imdb(path, splits=("train", "test"), seed: int = 0, shuffle: bool = True) -> dict[str, Dataset]:
    """Several IMDB splits in one pass over the folder or archive: {split: Dataset}.

    Reviews are first put in a fixed order (class, then review id), so a folder and its archive
    give identical datasets, and then shuffled with `seed`.
    """
    for split in splits:
        if split not in IMDB_SPLITS:
            raise LstmkitError(f"unknown IMDB split '{split}'; choose one of {', '.join(IMDB_SPLITS)}")
    path = _imdb_location(Path(path).expanduser(), splits)
    found: dict[str, list] = {s: [] for s in splits}
    replaced = dict.fromkeys(splits, 0)
    for name, raw in _imdb_files(path, splits):
        m = _IMDB_MEMBER.match(name)
        if not m:
            continue
        split = "unsup" if m.group(2) == "unsup" else m.group(1)
        if split not in found:
            continue
        text, bad = decode_text(raw)
        replaced[split] += bad
        label = UNLABELED if split == "unsup" else IMDB_CLASSES.index(m.group(2))
        found[split].append((label, int(m.group(3)), f"{m.group(1)}/{m.group(2)}/{m.group(3)}_{m.group(4)}.txt", text))
    out = {}
    for split, rows in found.items():
        if not rows:
            raise LstmkitError(f"{path} holds no IMDB '{split}' reviews ({split}/{'unsup' if split == 'unsup' else 'pos|neg'}/*.txt); pass the folder or archive that has them" + (" (the unlabeled reviews ship as aclImdb_unsup.tar.gz or inside aclImdb_v1.tar.gz)" if split == "unsup" else ""))
        rows.sort(key=lambda r: (r[0], r[1]))
        ds = Dataset([r[3] for r in rows], np.array([r[0] for r in rows], dtype=np.int64), list(IMDB_CLASSES), source=str(path), split=split, ids=[r[2] for r in rows], replaced=replaced[split])
        _warn_replaced(ds)
        ds = _drop_empty(ds)
        out[split] = ds.shuffled(seed) if shuffle else ds
    return out


def imdb_source(source) -> Path | None:
    """The IMDB folder or archive a source names ('imdb' is downloaded and cached), or None when
    the source is the user's own data."""
    if str(source).lower() == "imdb":
        return download_imdb()
    path = Path(source).expanduser()
    return path if path.exists() and is_imdb(path) else None


def is_imdb(path: Path) -> bool:
    """Whether a path looks like IMDB: an archive, or a folder holding aclImdb's train/ split."""
    if path.is_file():
        return path.name.endswith((".tar.gz", ".tgz", ".tar"))
    return any((p / "train" / "pos").is_dir() or (p / "train" / "unsup").is_dir() for p in (path, path / "aclImdb")) or any(path.glob("aclImdb*.tar.gz"))


def _imdb_location(path: Path, splits) -> Path:
    """The folder or archive to read: `path` itself, its aclImdb/, or the archive in it that has `splits`."""
    if not path.exists():
        raise LstmkitError(f"{path} does not exist; pass the aclImdb/ folder or {IMDB_FILENAME} (or 'imdb' to download it)")
    if path.is_file() or (path / "train").is_dir() or (path / "test").is_dir():
        return path
    if (path / "aclImdb").is_dir():
        return path / "aclImdb"
    # A folder of archives: the official one holds every split, the two halves one kind each.
    half = "aclImdb_unsup.tar.gz" if set(splits) == {"unsup"} else None if "unsup" in splits else "aclImdb_labeled.tar.gz"
    for name in (half, IMDB_FILENAME):
        if name and (path / name).is_file():
            return path / name
    raise LstmkitError(f"{path} holds neither an aclImdb/ folder nor {IMDB_FILENAME}; pass the folder or archive itself")


def _imdb_files(path: Path, splits):
    """(relative name, bytes) of the review files of `splits` in a folder, or of every file in an archive."""
    if path.is_file():
        yield from read_tar(path)
        return
    root = path.resolve()
    folders = [(s, c) for s in ("train", "test") if s in splits for c in ("neg", "pos")]
    folders += [("train", "unsup")] if "unsup" in splits else []
    for sub, cls in folders:
        folder = path / sub / cls
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if entry.is_symlink():
                _check_inside(root, Path(entry.path))
            if entry.is_file():
                yield f"{sub}/{cls}/{entry.name}", _read_bytes(Path(entry.path))


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise LstmkitError(f"cannot read {path} ({e.strerror or e}); check that the file exists and is readable") from None


def _check_inside(root: Path, path: Path) -> None:
    target = path.resolve()
    if root != target and root not in target.parents:
        raise LstmkitError(f"{path} is a link to {target}, outside {root}; refusing to follow it (replace the link by the file)")


# ---- reading tar archives without extracting -------------------------------------------------

_BLOCK = 512
_REGULAR = (b"0", b"\x00", b"7")
_LINKS = {b"1": "hard link", b"2": "symlink"}


def read_tar(path) -> Iterator[tuple[str, bytes]]:
    """Yield (member name, bytes) for each regular file of a .tar, .tar.gz or .tgz, in one pass.

    Nothing is written to disk. Members whose names would escape the archive's folder (absolute
    paths, '..') and links (symlinks, hard links) make the whole archive refused: a well-formed
    dataset archive has none, and a malicious one is not read at all.

    The parser reads ustar/GNU/pax headers directly (about 3x faster than `tarfile` on IMDB's
    50,000 small members); gzip is decompressed in 1 MiB chunks, so memory stays small.
    """
    path = Path(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise LstmkitError(f"archive {path} does not exist; check the path") from None
    except OSError as e:
        raise LstmkitError(f"cannot read archive {path} ({e.strerror or e}); check that it is a readable file") from None
    with f:
        stream = _Stream(f, path)
        yield from _tar_members(stream, path)


class _Stream:
    """A file as one byte stream, gunzipped on the fly when it starts with the gzip magic."""

    def __init__(self, f, path: Path):
        self.f, self.path = f, path
        self.gzip = f.read(2) == b"\x1f\x8b"
        f.seek(0)
        self.inflate = zlib.decompressobj(31) if self.gzip else None
        self.buf, self.pos = b"", 0

    def _more(self) -> bytes:
        while True:
            chunk = self.f.read(1 << 20)
            if not self.gzip:
                return chunk
            try:
                if not chunk:
                    if not self.inflate.eof:
                        raise zlib.error("compressed data ends early")
                    return b""
                out = self.inflate.decompress(chunk)
                # A .gz may hold several gzip members back to back.
                while self.inflate.eof and self.inflate.unused_data:
                    rest = self.inflate.unused_data
                    self.inflate = zlib.decompressobj(31)
                    out += self.inflate.decompress(rest)
            except zlib.error as e:
                raise LstmkitError(f"{self.path} is not a readable gzip archive ({e}); download it again or pass the extracted folder") from None
            if out:
                return out

    def read(self, n: int) -> bytes:
        """Up to n bytes (fewer only at the end of the stream)."""
        while len(self.buf) - self.pos < n:
            more = self._more()
            if not more:
                break
            self.buf = self.buf[self.pos :] + more
            self.pos = 0
        out = self.buf[self.pos : self.pos + n]
        self.pos += len(out)
        return out


def _tar_members(stream: _Stream, path: Path):
    unreadable = f"{path} is not a readable tar archive"
    long_name = None
    while True:
        header = stream.read(_BLOCK)
        if len(header) < _BLOCK:
            if not header.strip(b"\x00"):
                return
            raise LstmkitError(f"{unreadable} (it ends inside a header); download it again")
        if not header.strip(b"\x00"):
            return  # end-of-archive marker
        if header[257:262] != b"ustar" or _number(header[148:156]) != sum(header) - sum(header[148:156]) + 8 * 32:
            raise LstmkitError(f"{unreadable} (bad header at byte {stream.pos - _BLOCK}); download it again or pass the extracted folder")
        size = _number(header[124:136])
        if size < 0:
            raise LstmkitError(f"{unreadable} (bad size field at byte {stream.pos - _BLOCK}); download it again")
        kind = header[156:157]
        name = header[:100].split(b"\x00", 1)[0]
        if header[257:263] == b"ustar\x00":  # POSIX: a prefix extends the name
            prefix = header[345:500].split(b"\x00", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        data = stream.read(size)
        if len(data) < size:
            raise LstmkitError(f"{unreadable} (it ends inside {name.decode(errors='replace')}); download it again")
        stream.read(-size % _BLOCK)
        if kind == b"L":  # GNU long name for the next member
            long_name = data.split(b"\x00", 1)[0]
            continue
        if kind == b"x":  # pax extended header for the next member
            long_name = _pax_path(data) or long_name
            continue
        if kind in (b"g", b"K"):
            continue
        if long_name is not None:
            name, long_name = long_name, None
        text_name = name.decode("utf-8", "replace")
        _check_member(text_name, path)
        if kind in _LINKS:
            raise LstmkitError(f"{path} holds a {_LINKS[kind]} ({text_name}); links could point outside the dataset, so the archive is refused")
        if kind in _REGULAR:
            yield text_name, data


def _check_member(name: str, path: Path) -> None:
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise LstmkitError(f"{path} holds member '{name}' whose path would escape its folder; the archive is refused")


def _number(field: bytes) -> int:
    """A tar numeric field: octal text, or GNU base-256 when the high bit is set."""
    if field[:1] and field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\x00", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        return -1  # never equals a checksum or a size, so the header is reported unreadable


def _pax_path(data: bytes) -> bytes | None:
    """The 'path' record of a pax header ('%d path=%s\\n' records)."""
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        length = int(data[pos:space])
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        if key == b"path":
            return value
        pos += length
    return None


# ---- the user's own files --------------------------------------------------------------------


def _load_table(path: Path, text_column: str | None, label_column: str | None) -> Dataset:
    """A CSV, TSV or JSON Lines file with a header / keys: one text and one label per row."""
    suffix = path.suffix.lower()
    text, replaced = decode_text(_read_bytes(path))
    text = text.removeprefix("\ufeff")
    if suffix in (".csv", ".tsv", ".tab"):
        columns, rows = _read_delimited(text, "\t" if suffix != ".csv" else ",", path)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        columns, rows = _read_json_lines(text, path)
    else:
        raise LstmkitError(f"{path.name}: unknown file type '{suffix}'; use .csv, .tsv, .jsonl, or a folder with one sub-folder per class")
    if not rows:
        raise LstmkitError(f"{path} holds no rows; the dataset is empty")
    text_key = _pick_column(columns, text_column, TEXT_COLUMNS, "text", path)
    label_key = _pick_column(columns, label_column, LABEL_COLUMNS, "label", path)
    if text_key == label_key:
        raise LstmkitError(f"{path.name}: the text and label columns are both '{text_key}'; choose two different columns")
    texts = []
    for i, row in enumerate(rows):
        value = row.get(text_key)
        if value is not None and not isinstance(value, str):
            raise LstmkitError(f"{path.name} row {i + 1}: text is a {type(value).__name__}, not a string; choose the text column with --text-column")
        texts.append(value or "")
    labels, class_names = parse_labels([row.get(label_key) for row in rows], path.name)
    ds = Dataset(texts, labels, class_names, source=str(path), ids=[str(i + 1) for i in range(len(rows))], replaced=replaced)
    _warn_replaced(ds)
    return _drop_empty(ds)


def _read_delimited(text: str, delimiter: str, path: Path) -> tuple[list[str], list[dict]]:
    csv.field_size_limit(2**31 - 1)  # reviews longer than csv's 128 KiB default are fine
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            raise LstmkitError(f"{path} is empty; the dataset needs a header row and at least one row per class")
        header = [h.strip() for h in header]
        rows = []
        for line in reader:
            if not line or line == [""]:
                continue
            if len(line) != len(header):
                raise LstmkitError(f"{path.name} line {reader.line_num}: {len(line)} fields where the header has {len(header)}; quote texts that hold the delimiter")
            rows.append(dict(zip(header, line)))
    except csv.Error as e:
        raise LstmkitError(f"{path.name} line {reader.line_num}: {e}; check the quoting") from None
    return header, rows


def _read_json_lines(text: str, path: Path) -> tuple[list[str], list[dict]]:
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):  # a plain JSON array of objects is accepted too
            rows = json.loads(text)
        else:
            rows = []
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    rows.append(json.loads(line))
    except json.JSONDecodeError as e:
        where = f"line {n}" if not stripped.startswith("[") else f"line {e.lineno}"
        raise LstmkitError(f"{path.name} {where} is not valid JSON ({e.msg}); write one JSON object per line") from None
    if not all(isinstance(r, dict) for r in rows):
        raise LstmkitError(f"{path.name}: every line must be a JSON object like {{\"text\": ..., \"label\": ...}}")
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return columns, rows


def _pick_column(columns: list[str], chosen: str | None, candidates, role: str, path: Path) -> str:
    flag = f"--{role}-column"
    if chosen is not None:
        if chosen in columns:
            return chosen
        raise LstmkitError(f"{path.name} has no column '{chosen}' (columns: {', '.join(columns)}); pass one of them with {flag}")
    lower = {c.lower().strip(): c for c in columns}
    for name in candidates:
        if name in lower:
            return lower[name]
    raise LstmkitError(f"{path.name}: no {role} column found among {', '.join(columns) or '(none)'}; name it with {flag}")


def _load_class_folders(path: Path) -> Dataset:
    """A folder with one sub-folder per class, each holding .txt files (one text per file)."""
    classes = sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise LstmkitError(f"{path} has no sub-folders; put each class's .txt files in a sub-folder named after the class")
    root = path.resolve()
    texts, labels, ids, replaced = [], [], [], 0
    for label, name in enumerate(classes):
        for folder, dirs, files in sorted(os.walk(path / name)):
            dirs.sort()
            for file in sorted(files):
                if not file.endswith(".txt") or file.startswith("."):
                    continue
                file_path = Path(folder) / file
                if file_path.is_symlink():
                    _check_inside(root, file_path)
                text, bad = decode_text(_read_bytes(file_path))
                texts.append(text)
                labels.append(label)
                ids.append(str(file_path.relative_to(path)))
                replaced += bad
    if not texts:
        raise LstmkitError(f"{path} holds no .txt files in its class sub-folders ({', '.join(classes)}); the dataset is empty")
    counts = np.bincount(labels, minlength=len(classes))
    if np.count_nonzero(counts) < 2:
        raise LstmkitError(f"{path}: only class '{classes[int(np.argmax(counts))]}' has .txt files; a classifier needs at least two classes")
    ds = Dataset(texts, np.array(labels, dtype=np.int64), classes, source=str(path), ids=ids, replaced=replaced)
    _warn_replaced(ds)
    return _drop_empty(ds)


def parse_labels(values, where: str = "labels") -> tuple[np.ndarray, list[str]]:
    """Turn raw labels (strings or integers) into ids 0..C-1 and sorted class names.

    Integer labels sort numerically, others alphabetically, so the mapping never depends on row
    order. Floats must be whole numbers; empty labels are an error.

    >>> parse_labels(["pos", "neg", "pos"])
    (array([1, 0, 1]), ['neg', 'pos'])
    >>> parse_labels([10, 2, "2"])
    (array([1, 0, 0]), ['2', '10'])
    """
    names = []
    for i, v in enumerate(values):
        if isinstance(v, bool):
            name = str(v).lower()
        elif isinstance(v, int):
            name = str(v)
        elif isinstance(v, float) and v.is_integer():
            name = str(int(v))
        elif isinstance(v, str) and v.strip():
            name = v.strip()
            if _FLOAT.fullmatch(name):
                number = float(name)
                if not number.is_integer():
                    raise LstmkitError(f"{where} row {i + 1}: label '{name}' is not a whole number; labels must be class names or integers (regression targets are not supported)")
                name = str(int(number))
        elif v is None or (isinstance(v, str) and not v.strip()):
            raise LstmkitError(f"{where} row {i + 1}: the label is empty; fill it in or remove the row")
        else:
            raise LstmkitError(f"{where} row {i + 1}: label {v!r} does not parse; labels must be class names or integers")
        names.append(name)
    distinct = set(names)
    numeric = all(_INT.fullmatch(n) for n in distinct)
    class_names = sorted(distinct, key=int) if numeric else sorted(distinct)
    if len(class_names) < 2:
        raise LstmkitError(f"{where}: every row has label '{class_names[0]}' (one class); a classifier needs at least two classes" if class_names else f"{where}: the dataset is empty")
    if len(class_names) > 1000 or (len(names) >= 20 and len(class_names) > len(names) // 2):
        raise LstmkitError(f"{where}: {len(class_names)} distinct labels in {len(names)} rows looks like a text column; choose the label column with --label-column")
    index = {n: i for i, n in enumerate(class_names)}
    return np.array([index[n] for n in names], dtype=np.int64), class_names


_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")


# ---- decoding and cleaning -------------------------------------------------------------------


def decode_text(raw: bytes) -> tuple[str, int]:
    """Decode UTF-8, replacing each undecodable sequence by U+FFFD: (text, replacements).

    >>> decode_text(b"caf\\xe9 ok")
    ('caf\\ufffd ok', 1)
    """
    try:
        return raw.decode("utf-8"), 0
    except UnicodeDecodeError:
        pass
    parts, count, pos = [], 0, 0
    while True:
        try:
            parts.append(raw[pos:].decode("utf-8"))
            return "".join(parts), count
        except UnicodeDecodeError as e:
            # Same result as errors="replace", which substitutes exactly raw[start:end].
            parts.append(raw[pos : pos + e.start].decode("utf-8"))
            parts.append("\ufffd")
            count += 1
            pos += e.end


def _warn_replaced(ds: Dataset) -> None:
    if ds.replaced:
        warnings.warn(DataWarning(f"{ds.source}: {ds.replaced} undecodable byte sequences (not UTF-8) were replaced by U+FFFD; re-save the file as UTF-8 to keep them"), stacklevel=4)


def _drop_empty(ds: Dataset) -> Dataset:
    """Drop empty (or whitespace-only) texts with one counted warning; refuse an empty dataset."""
    keep = [i for i, t in enumerate(ds.texts) if t.strip()]
    if not keep:
        raise LstmkitError(f"{ds.source}: every text is empty; the dataset is empty (check the text column)")
    if len(keep) == len(ds.texts):
        return ds
    dropped = len(ds.texts) - len(keep)
    warnings.warn(DataWarning(f"{ds.source}: dropped {dropped} empty text{'s' * (dropped != 1)} of {len(ds.texts)}"), stacklevel=4)
    out = ds.subset(keep)
    out.empty = dropped
    known = out.labels[out.labels != UNLABELED]
    if ds.split != "unsup" and len(np.unique(known)) < 2:
        raise LstmkitError(f"{ds.source}: after dropping empty texts only one class is left; a classifier needs at least two")
    return out


# ---- download --------------------------------------------------------------------------------


def lstmkit_home() -> Path:
    """The cache folder: $LSTMKIT_HOME, or ~/.cache/lstmkit."""
    return Path(os.environ.get("LSTMKIT_HOME") or Path.home() / ".cache" / "lstmkit").expanduser()


def download_imdb(cache_dir=None, *, progress: bool = True, timeout: float = 30.0) -> Path:
    """Download the official IMDB archive once, verify its SHA-256, and return its path.

    The file lands in `cache_dir` (default: `lstmkit_home() / "datasets"`). A download that
    stops halfway leaves `aclImdb_v1.tar.gz.part`, and the next call resumes it with an HTTP
    Range request. Offline, the error says how to pass a local copy instead.
    """
    url, expected = IMDB_URL, IMDB_SHA256  # read at call time, so tests can point them elsewhere
    folder = Path(cache_dir).expanduser() if cache_dir is not None else lstmkit_home() / "datasets"
    target = folder / IMDB_FILENAME
    if target.is_file():
        if sha256(target) == expected:
            return target
        target.unlink()  # a corrupted cache is downloaded again
    folder.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    _fetch(url, part, progress, timeout)
    digest = sha256(part)
    if digest != expected:
        part.unlink()
        raise LstmkitError(f"the download from {url} has SHA-256 {digest[:12]}..., expected {expected[:12]}...; the partial file was removed, run again (or pass a local copy with --data path/to/{IMDB_FILENAME})")
    os.replace(part, target)
    return target


def _fetch(url: str, part: Path, progress: bool, timeout: float) -> None:
    """Download url into `part`, appending to what is already there when the server allows."""
    offline_hint = f"if this machine is offline, download {IMDB_FILENAME} elsewhere and pass it with --data path/to/{IMDB_FILENAME}"
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "lstmkit", **({"Range": f"bytes={have}-"} if have else {})})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the partial file is already complete
            return
        raise LstmkitError(f"cannot download {url}: HTTP {e.code} {e.reason}; {offline_hint}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise LstmkitError(f"cannot download {url} ({reason}); {offline_hint}") from None
    with response:
        resumed = response.status == 206 and response.headers.get("Content-Range", "").startswith(f"bytes {have}-")
        if not resumed:
            have = 0  # the server ignored the Range: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        from tqdm.auto import tqdm

        with open(part, "ab" if resumed else "wb") as f, tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=IMDB_FILENAME, disable=not progress) as bar:
            try:
                while chunk := response.read(1 << 16):
                    f.write(chunk)
                    bar.update(len(chunk))
            except OSError as e:
                raise LstmkitError(f"the download of {url} stopped after {f.tell() / 1e6:.1f} MB ({e}); run again to resume") from None
        if total is not None and part.stat().st_size < total:
            raise LstmkitError(f"the download of {url} stopped after {part.stat().st_size / 1e6:.1f} of {total / 1e6:.1f} MB; run again to resume")
