"""IMDB (Maas et al. 2011): the `aclImdb/` folder, its archives read without extracting, the download.

    load_imdb("aclImdb_v1.tar.gz", split="test")     25,000 reviews, neg=0 / pos=1
    read_imdb(path, ("train", "test"))               several splits in one pass
    download_imdb()                                  the official archive, cached and verified

Examples come back in a seeded shuffled order. On disk IMDB is sorted by class, and a shuffle
buffer smaller than the data (the seed's 10,000 of 25,000) then serves runs of one label: a model
that follows the label drift shows 72% running train accuracy and 50% validation.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from lstmkit.atomic import sha256
from lstmkit.data.dataset import (
    UNLABELED,
    Dataset,
    decode_text,
    drop_empty,
    warn_replaced,
)
from lstmkit.data.tar import read_tar
from lstmkit.errors import LstmkitError
from lstmkit.paths import lstmkit_home

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"


IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"


IMDB_FILENAME = "aclImdb_v1.tar.gz"


IMDB_CLASSES = ["neg", "pos"]


IMDB_SPLITS = ("train", "test", "unsup")


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
            raise LstmkitError(
                f"{path} holds no IMDB '{split}' reviews ({split}/{'unsup' if split == 'unsup' else 'pos|neg'}/*.txt); pass the folder or archive that has them"
                + (
                    " (the unlabeled reviews ship as aclImdb_unsup.tar.gz or inside aclImdb_v1.tar.gz)"
                    if split == "unsup"
                    else ""
                )
            )
        rows.sort(key=lambda r: (r[0], r[1]))
        ds = Dataset(
            [r[3] for r in rows],
            np.array([r[0] for r in rows], dtype=np.int64),
            list(IMDB_CLASSES),
            source=str(path),
            split=split,
            ids=[r[2] for r in rows],
            replaced=replaced[split],
        )
        warn_replaced(ds)
        ds = drop_empty(ds)
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
    return any(
        (p / "train" / "pos").is_dir() or (p / "train" / "unsup").is_dir() for p in (path, path / "aclImdb")
    ) or any(path.glob("aclImdb*.tar.gz"))


def _imdb_location(path: Path, splits) -> Path:
    """The folder or archive to read: `path` itself, its aclImdb/, or the archive in it that has `splits`."""
    if not path.exists():
        raise LstmkitError(
            f"{path} does not exist; pass the aclImdb/ folder or {IMDB_FILENAME} (or 'imdb' to download it)"
        )
    if path.is_file() or (path / "train").is_dir() or (path / "test").is_dir():
        return path
    if (path / "aclImdb").is_dir():
        return path / "aclImdb"
    # A folder of archives: the official one holds every split, the two halves one kind each.
    half = (
        "aclImdb_unsup.tar.gz" if set(splits) == {"unsup"} else None if "unsup" in splits else "aclImdb_labeled.tar.gz"
    )
    for name in (half, IMDB_FILENAME):
        if name and (path / name).is_file():
            return path / name
    raise LstmkitError(
        f"{path} holds neither an aclImdb/ folder nor {IMDB_FILENAME}; pass the folder or archive itself"
    )


def _imdb_files(path: Path, splits):
    """(relative name, bytes) of the review files of `splits` in a folder, or of every file in an archive."""
    if path.is_file():
        yield from read_tar(path, want=lambda name: _IMDB_MEMBER.match(name) is not None)
        return
    root = path.resolve()
    folders = [(s, c) for s in ("train", "test") if s in splits for c in ("neg", "pos")]
    folders += [("train", "unsup")] if "unsup" in splits else []
    for sub, cls in folders:
        folder = path / sub / cls
        if not folder.is_dir():
            continue
        check_inside(root, folder)  # a class folder linked elsewhere (say to /etc) is not read
        for entry in os.scandir(folder):
            if entry.is_symlink():
                check_inside(root, Path(entry.path))
            if entry.is_file():
                yield f"{sub}/{cls}/{entry.name}", read_bytes(Path(entry.path))


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise LstmkitError(
            f"cannot read {path} ({e.strerror or e}); check that the file exists and is readable"
        ) from None


def check_inside(root: Path, path: Path) -> None:
    target = path.resolve()
    if root != target and root not in target.parents:
        raise LstmkitError(
            f"{path} is a link to {target}, outside {root}; refusing to follow it (replace the link by what it points to)"
        )


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
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LstmkitError(
            f"cannot keep the download in {folder} ({e.strerror}); set LSTMKIT_HOME to a writable folder, "
            f"or pass a local copy with --data path/to/{IMDB_FILENAME}"
        ) from None
    part = target.with_name(target.name + ".part")
    _fetch(url, part, progress, timeout)
    digest = sha256(part)
    if digest != expected:
        part.unlink()
        raise LstmkitError(
            f"the download from {url} has SHA-256 {digest[:12]}..., expected {expected[:12]}...; the partial file was removed, run again (or pass a local copy with --data path/to/{IMDB_FILENAME})"
        )
    os.replace(part, target)
    return target


def _fetch(url: str, part: Path, progress: bool, timeout: float) -> None:
    """Download url into `part`, appending to what is already there when the server allows."""
    offline_hint = f"if this machine is offline, download {IMDB_FILENAME} elsewhere and pass it with --data path/to/{IMDB_FILENAME}"
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(
        url, headers={"User-Agent": "lstmkit", **({"Range": f"bytes={have}-"} if have else {})}
    )
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

        with (
            open(part, "ab" if resumed else "wb") as f,
            tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=IMDB_FILENAME, disable=not progress) as bar,
        ):
            try:
                while chunk := response.read(1 << 16):
                    f.write(chunk)
                    bar.update(len(chunk))
            except OSError as e:
                raise LstmkitError(
                    f"the download of {url} stopped after {f.tell() / 1e6:.1f} MB ({e}); run again to resume"
                ) from None
        if total is not None and part.stat().st_size < total:
            raise LstmkitError(
                f"the download of {url} stopped after {part.stat().st_size / 1e6:.1f} of {total / 1e6:.1f} MB; run again to resume"
            )
