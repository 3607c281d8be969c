"""Reading tar archives (plain or gzip) member by member, without extracting them."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from pathlib import Path

from lstmkit.errors import LstmkitError

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
        f = open(path, "rb")  # noqa: SIM115 (closed by the `with f:` below, once open errors are told apart)
    except FileNotFoundError:
        raise LstmkitError(f"archive {path} does not exist; check the path") from None
    except OSError as e:
        raise LstmkitError(
            f"cannot read archive {path} ({e.strerror or e}); check that it is a readable file"
        ) from None
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
                raise LstmkitError(
                    f"{self.path} is not a readable gzip archive ({e}); download it again or pass the extracted folder"
                ) from None
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
            raise LstmkitError(
                f"{unreadable} (bad header at byte {stream.pos - _BLOCK}); download it again or pass the extracted folder"
            )
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
            raise LstmkitError(
                f"{path} holds a {_LINKS[kind]} ({text_name}); links could point outside the dataset, so the archive is refused"
            )
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
