"""Multi-label data: label sets from fastText lines, JSON lists and CSV cells, as a 0/1 matrix that
subsets, shuffles and splits; the bad label sets each refused in one line."""

import numpy as np
import pytest

from lstmkit.data.dataset import Dataset, train_val_split
from lstmkit.data.multilabel import as_multi_label, match_labels, parse_label_sets
from lstmkit.data.sources import load_dataset
from lstmkit.errors import LstmkitError


def test_fasttext_lines_with_several_labels_are_a_label_matrix(tmp_path):
    path = tmp_path / "news.txt"
    path.write_text(
        "__label__sports __label__politics The minister ran a marathon\n"
        "__label__sports  A late goal\r\n"
        "\n"
        "__label__politics __label__science __label__sports Funding for the lab's football team\n"
    )
    ds = load_dataset(path, shuffle=False)
    assert ds.multi_label and ds.class_names == ["politics", "science", "sports"]
    assert ds.texts == ["The minister ran a marathon", "A late goal", "Funding for the lab's football team"]
    assert ds.labels.tolist() == [[1, 0, 1], [0, 0, 1], [1, 1, 1]]
    assert ds.class_counts() == {"politics": 2, "science": 1, "sports": 3}


def test_json_lines_with_label_lists_and_an_empty_set(tmp_path):
    path = tmp_path / "tags.jsonl"
    path.write_text(
        '{"text": "a", "labels": ["x", "y"]}\n{"text": "b", "labels": []}\n{"text": "c", "labels": "y"}\n'
        '{"text": "d", "labels": [10, "x"]}\n'
    )
    ds = load_dataset(path, shuffle=False)
    assert ds.class_names == ["10", "x", "y"]
    assert ds.labels.tolist() == [[0, 1, 1], [0, 0, 0], [0, 0, 1], [1, 1, 0]]


def test_csv_needs_multi_label_and_splits_its_cells_at_a_pipe(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\nfirst text,a|b\nsecond one,b\nthird,a\nfourth,a | c\n")
    ds = load_dataset(path, shuffle=False, multi_label=True)
    assert ds.class_names == ["a", "b", "c"]
    assert ds.labels.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0], [1, 0, 1]]
    single = load_dataset(path, shuffle=False)  # without the flag a cell is one label
    assert not single.multi_label and "a|b" in single.class_names


def test_multi_label_forced_on_a_single_label_file_gives_sets_of_one(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("__label__a x\n__label__b y\n__label__a z\n")
    ds = load_dataset(path, shuffle=False, multi_label=True)
    assert ds.labels.tolist() == [[1, 0], [0, 1], [1, 0]]
    assert as_multi_label(Dataset(["u"], np.array([1]), ["p", "q"])).labels.tolist() == [[0, 1]]


@pytest.mark.parametrize(
    "name,content,kw,message",
    [
        ("none.txt", "no label here\n", {"multi_label": True, "file_format": "fasttext"}, "line 1 has no __label__"),
        (
            "empty.jsonl",
            '{"text": "a", "labels": ["x", ""]}\n{"text": "b", "labels": ["y"]}\n',
            {},
            "row 1: the label list",
        ),
        (
            "nested.jsonl",
            '{"text": "a", "labels": [["x"]]}\n{"text": "b", "labels": ["y"]}\n',
            {},
            "empty or nested label",
        ),
        ("bare.jsonl", '{"text": "a", "labels": []}\n{"text": "b", "labels": []}\n', {}, "no text carries any label"),
        ("one.jsonl", '{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": []}\n', {}, "one class"),
        ("gap.csv", "text,label\nfirst,a||b\nsecond,b\n", {"multi_label": True}, "row 1: the label list"),
        ("missing.csv", "text,label\nfirst,a\nsecond,\n", {"multi_label": True}, "row 2: the label is empty"),
    ],
)
def test_bad_label_sets_are_one_clear_line(tmp_path, name, content, kw, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(LstmkitError, match=message) as e:
        load_dataset(tmp_path / name, shuffle=False, **kw)
    assert "\n" not in str(e.value)


def test_lists_read_as_one_label_each_are_refused_by_name():
    with pytest.raises(LstmkitError, match="several labels, but the model is single-label"):
        match_labels(Dataset(["a"], np.array([[1, 1]]), ["x", "y"]), ["x", "y"], False)


def test_subset_shuffle_relabel_and_a_split_that_keeps_every_label():
    rng = np.random.default_rng(0)
    labels = (rng.random((200, 4)) < [0.5, 0.3, 0.1, 0.04]).astype(np.int64)
    ds = Dataset([str(i) for i in range(200)], labels, ["a", "b", "c", "d"])
    assert ds.subset([3, 1]).labels.tolist() == labels[[3, 1]].tolist()
    shuffled = ds.shuffled(1)
    assert sorted(map(int, shuffled.texts)) == list(range(200))
    assert all((shuffled.labels[i] == labels[int(t)]).all() for i, t in enumerate(shuffled.texts))
    train, val = train_val_split(ds, 0.25, seed=2)
    assert len(train) + len(val) == 200 and not set(train.texts) & set(val.texts)
    assert (val.labels.sum(axis=0) > 0).all()  # even the rarest label (8 texts) reaches validation
    share = val.labels.sum(axis=0) / labels.sum(axis=0)
    assert np.all(np.abs(share - 0.25) < 0.15), share
    moved = ds.relabeled(["z", "d", "c", "b", "a"])
    assert moved.labels.tolist() == np.c_[np.zeros(200, int), labels[:, ::-1]].tolist()
    with pytest.raises(LstmkitError, match="class 'a', which the model does not know"):
        ds.relabeled(["b", "c", "d"])


def test_parse_label_sets_orders_numbers_numerically():
    matrix, names = parse_label_sets([[2, 10], ["10"]], "f")
    assert names == ["2", "10"] and matrix.tolist() == [[1, 1], [0, 1]]
