"""lstmkit.atomic: whole files, the permissions a plain open() would give, no temporary left."""

import os
import stat
from pathlib import Path

import pytest

from lstmkit import atomic
from lstmkit.errors import LstmkitError


def test_a_written_file_gets_the_umask_permissions_not_mkstemps_private_ones(tmp_path):
    path = atomic.write_json(tmp_path / "a.json", {"x": 1})
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what open() gives under this process's umask
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~atomic._UMASK
    assert set(os.listdir(tmp_path)) == {"a.json", "plain.txt"}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = atomic.write_bytes(tmp_path / "f.bin", b"old")

    def broken(tmp):
        Path(tmp).write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic.write_with(path, broken)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]
    with pytest.raises(LstmkitError, match="does not exist"):
        atomic.write_bytes(tmp_path / "missing" / "f.bin", b"x")
