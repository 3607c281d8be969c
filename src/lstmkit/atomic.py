"""Files written whole or not at all, and their SHA-256: the one place lstmkit does either.

A write goes to a temporary file in the target's folder, is flushed to disk (fsync), and is
renamed over the target; a crash, a full disk or Ctrl-C leaves the old file or the new one,
never a half-written one.

>>> write_json(tmp_path / "a.json", {"x": 1})          # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from lstmkit.errors import LstmkitError


def _read_umask():
    mask = os.umask(0)  # reading the umask means setting it; put it straight back (once, at import)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def sha256(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def write_with(path, write, *, suffix=""):
    """Write `path` atomically by calling `write(tmp_path)` on a temporary file beside it.

    `suffix` keeps an extension on the temporary name for writers that go by it (matplotlib).
    Returns the path. A missing folder is an LstmkitError that names it.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise LstmkitError(f"cannot write {path}: the folder {folder} does not exist")
    if path.is_dir():
        raise LstmkitError(f"cannot write {path}: it is a folder; give a file name")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=f".tmp{suffix}")
    except OSError as e:
        raise LstmkitError(f"cannot write in {folder} ({e.strerror}); choose a writable folder") from None
    os.close(fd)
    try:
        # mkstemp makes the file private (0600); the finished file gets what open() would give it
        # (0666 less the umask), so a model or a picture is as readable as the user's other files.
        os.chmod(tmp, 0o666 & ~_UMASK)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_bytes(path, data: bytes):
    """Write bytes to `path` atomically; returns the path."""
    return write_with(path, lambda tmp: Path(tmp).write_bytes(data))


def write_json(path, obj):
    """Write JSON (indented, one trailing newline) to `path` atomically; returns the path."""
    return write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode("utf-8"))


def fsync_dir(directory):
    """Make a rename in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
