"""The token folder: what is written is what is read back, views index it, and a damaged file is
refused (the caller builds it again) rather than read."""

import json

import numpy as np
import pytest

from lstmkit.data.batching import iterate_batches
from lstmkit.data.token_file import open_token_folder, write_token_folder
from lstmkit.errors import LstmkitError

TEXTS = [[5, 6, 7], [8], [9, 9, 4, 3], [2, 2]]


def _write(folder):
    flat = np.concatenate([np.array(t, np.int32) for t in TEXTS])
    lengths = np.array([len(t) for t in TEXTS], np.int64)
    chunks = [(flat[:4], lengths[:2], np.array([1, 0])), (flat[4:], lengths[2:], np.array([1, 1]))]
    return write_token_folder(folder, chunks, {"key": "k", "vocabulary": ["", "[UNK]", "a"], "class_names": ["n", "p"]})


def test_written_rows_labels_and_views_read_back(tmp_path):
    folder = _write(tmp_path / "t")
    assert [r.tolist() for r in folder.rows] == TEXTS
    assert folder.labels.tolist() == [1, 0, 1, 1] and folder.meta["texts"] == 4 and folder.meta["tokens"] == 10
    view = folder.rows[np.array([2, 0])]
    assert len(view) == 2 and view.lengths.tolist() == [4, 3] and view[0].tolist() == [9, 9, 4, 3]
    assert view[np.array([1])][0].tolist() == [5, 6, 7]  # a view of a view
    assert view.vocabulary == ["", "[UNK]", "a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]  # no staging folder left behind


def test_batches_from_a_token_file_equal_those_from_arrays(tmp_path):
    rows = _write(tmp_path / "t").rows
    labels = np.array([1, 0, 1, 1])
    kw = {"seed": 4, "bucket": True, "pad_multiple": 2, "max_length": 3}
    for a, b in zip(
        iterate_batches(rows, labels, 3, **kw), iterate_batches([np.array(t) for t in TEXTS], labels, 3, **kw)
    ):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: (f / "tokens.bin").write_bytes((f / "tokens.bin").read_bytes()[:-4]),  # truncated
        lambda f: (f / "tokens.bin").write_bytes(b"\x07" + (f / "tokens.bin").read_bytes()[1:]),  # a byte changed
        lambda f: (f / "labels.bin").unlink(),
        lambda f: (f / "meta.json").write_text("{"),
        lambda f: (f / "meta.json").write_text(json.dumps({**json.loads((f / "meta.json").read_text()), "format": 99})),
    ],
)
def test_a_damaged_folder_is_refused(tmp_path, damage):
    _write(tmp_path / "t")
    damage(tmp_path / "t")
    assert open_token_folder(tmp_path / "t") is None
    assert [r.tolist() for r in _write(tmp_path / "t").rows] == TEXTS  # written again over it


def test_an_unwritable_cache_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(LstmkitError, match="cannot write the token cache in .*LSTMKIT_HOME"):
        _write(tmp_path / "file" / "t")
