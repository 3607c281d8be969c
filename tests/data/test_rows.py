"""Rows streamed from a file are the rows `load_table` reads from it: every format, with and
without a header, gzipped; and what cannot stream, or is malformed, is one clear error."""

import gzip
import json

import pytest

from lstmkit.data.dataset import parse_labels
from lstmkit.data.files import load_table
from lstmkit.data.rows import open_rows
from lstmkit.errors import LstmkitError

ROWS = [
    ("pos", 'a fine, "quoted" film'),
    ("neg", "dull\nover two lines"),
    ("pos", "lovely"),
    ("neg", "awful, really awful"),
    ("pos", "  "),  # empty: load_table drops it
    ("neg", "caf\u00e9 poor"),
]


def _csv(rows, header=True, delimiter=","):
    def quote(t):
        return '"' + t.replace('"', '""') + '"'

    lines = [f"label{delimiter}text"] if header else []
    return "\r\n".join(lines + [f"{label}{delimiter}{quote(text)}" for label, text in rows]) + "\r\n"


FILES = {
    "a.csv": lambda: _csv(ROWS).encode(),
    "b.csv": lambda: _csv(ROWS, header=False).encode("utf-8-sig"),
    "c.tsv": lambda: _csv(ROWS, delimiter="\t").encode(),
    "d.jsonl": lambda: "".join(json.dumps({"label": y, "text": t}) + "\n\n" for y, t in ROWS).encode(),
    "e.txt": lambda: "".join(f"__label__{y} {t.replace(chr(10), ' ')}\n" for y, t in ROWS).encode(),
    "f.csv.gz": lambda: gzip.compress(_csv(ROWS).encode()),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_streamed_rows_are_load_tables_rows(tmp_path, name, recwarn):
    path = tmp_path / name
    path.write_bytes(FILES[name]())
    streamed = list(open_rows(path, None, None))
    labels, class_names = parse_labels([label for _, label in streamed], name)
    kept = [i for i, (text, _) in enumerate(streamed) if text.strip()]
    in_memory = load_table(path, None, None)
    assert [streamed[i][0] for i in kept] == in_memory.texts and len(streamed) == len(ROWS)
    assert labels[kept].tolist() == in_memory.labels.tolist() and class_names == in_memory.class_names


def test_a_long_file_streams_past_the_sniffed_head(tmp_path):
    rows = [("pos" if i % 3 else "neg", f"text number {i} " + "x" * 200) for i in range(8000)]  # about 1.7 MB
    path = tmp_path / "long.csv"
    path.write_text(_csv(rows))
    streamed = list(open_rows(path, None, None))
    assert streamed == [(text, label) for label, text in rows]


def test_what_cannot_stream_or_is_malformed_is_one_clear_error(tmp_path):
    (tmp_path / "array.json").write_text(json.dumps([{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]))
    with pytest.raises(LstmkitError, match="one JSON array.*JSON Lines"):
        open_rows(tmp_path / "array.json", None, None)
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n{"text": \n')
    with pytest.raises(LstmkitError, match="bad.jsonl line 3 is not valid JSON"):
        list(open_rows(tmp_path / "bad.jsonl", None, None))
    (tmp_path / "multi.txt").write_text("__label__a one\n__label__b two\n__label__a __label__b three\n")
    # several labels on a line stream as a list; the corpus builder refuses them (tests/tasks/test_streamed.py)
    assert [label for _, label in open_rows(tmp_path / "multi.txt", None, None)] == ["a", "b", ["a", "b"]]
    (tmp_path / "ragged.csv").write_text("label,text\npos,fine\nneg,bad\n" + "pos,fine\n" * 300 + "neg,a,b\n")
    with pytest.raises(LstmkitError, match="ragged.csv line 304: 3 fields where the header has 2"):
        list(open_rows(tmp_path / "ragged.csv", None, None))
    with pytest.raises(LstmkitError, match="is a folder; --stream reads one"):
        open_rows(tmp_path, None, None)
