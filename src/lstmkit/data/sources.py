"""One loader for every labeled source: 'imdb', an IMDB folder or archive, a file, or class folders.

load_dataset("imdb")                         downloads and caches the official archive
load_dataset("aclImdb_v1.tar.gz", split="test")   read straight from the archive
load_dataset("reviews.csv", text_column="body")   CSV, TSV, JSON Lines, fastText, or class folders
load_dataset("SMSSpamCollection", text_column="1", label_column="0")   no header, no extension
"""

from __future__ import annotations

from pathlib import Path

from lstmkit.data.dataset import Dataset, train_val_split
from lstmkit.data.files import load_class_folders, load_table
from lstmkit.data.imdb import download_imdb, imdb_source, is_imdb, load_imdb, read_imdb
from lstmkit.data.multilabel import as_multi_label, match_labels
from lstmkit.errors import LstmkitError


def load_dataset(
    source,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    split: str | None = None,
    seed: int = 0,
    shuffle: bool = True,
    min_classes: int = 2,
    file_format: str | None = None,
    header: bool | None = None,
    multi_label: bool | None = None,
) -> Dataset:
    """Load labeled texts from 'imdb', an IMDB folder or archive, a CSV/TSV/JSON Lines/fastText file
    (gzipped or not), or a folder with one sub-folder per class.

    split: 'train' (default), 'test' or 'unsup' for IMDB; own files have no predefined split
    (leave it None or 'train' and use `train_val_split`). Examples are shuffled with `seed`
    unless shuffle=False. min_classes: 2 for data to train on, 1 for data to score a model on.
    file_format ('csv', 'tsv', 'jsonl', 'fasttext'; None: sniffed from the content) and header
    (None: detected) say how to read a file; columns are names or 0-based indexes. multi_label:
    None reads label sets where a file has them, True always (`lstmkit.data.multilabel`), False never.
    """
    if isinstance(source, str) and source.lower() == "imdb":
        return load_imdb(download_imdb(), split=split or "train", seed=seed, shuffle=shuffle)
    path = Path(source).expanduser()
    if not path.exists():
        raise LstmkitError(
            f"{path} does not exist; pass 'imdb', an aclImdb folder or .tar.gz, a CSV/TSV/JSON Lines/fastText file, or a folder of class sub-folders"
        )
    if is_imdb(path):
        return load_imdb(path, split=split or "train", seed=seed, shuffle=shuffle)
    if split not in (None, "train"):
        raise LstmkitError(f"{path.name} has no predefined '{split}' split; load it whole and use train_val_split")
    if path.is_dir():
        ds = load_class_folders(path, min_classes)
    else:
        reading = {"file_format": file_format, "header": header, "multi_label": multi_label}
        ds = load_table(path, text_column, label_column, min_classes, **reading)
    ds = as_multi_label(ds) if multi_label else ds
    return ds.shuffled(seed) if shuffle else ds


def load_source(source, split, **kw):
    """One labelled dataset: the named split of IMDB, or a whole file or folder of the user's."""

    imdb = imdb_source(source)
    if imdb is not None:
        return load_imdb(imdb, split=split, seed=kw.get("seed", 0))
    return load_dataset(source, **kw)  # min_classes=1 for a source that is only scored


def load_splits(
    data,
    *,
    test_data=None,
    test_fraction=0.2,
    text_column=None,
    label_column=None,
    seed=0,
    file_format=None,
    header=None,
    multi_label=None,
):
    """(train, test) datasets from a source: its own test split, --test-data, or a carved split.

    The columns, file_format, header and multi_label apply to --test-data as to data; a
    multi-label train makes the test's labels sets too."""

    kw = {
        "text_column": text_column,
        "label_column": label_column,
        "seed": seed,
        "file_format": file_format,
        "header": header,
        "multi_label": multi_label,
    }
    if test_data is not None:  # the test file's labels are mapped through the training classes
        train = load_source(data, "train", **kw)
        test = load_source(test_data, "test", **kw, min_classes=1)
        what = f"--test-data {test_data}"
        return train, match_labels(test, train.class_names, train.multi_label, what=what, owner="the training data")
    imdb = imdb_source(data)
    if imdb is not None:
        splits = read_imdb(imdb, splits=("train", "test"), seed=seed)  # one pass over the archive
        if multi_label:
            return as_multi_label(splits["train"]), as_multi_label(splits["test"])
        return splits["train"], splits["test"]
    full = load_dataset(data, **kw)
    print(f"{data} has no test split: holding out a stratified {test_fraction:.0%} as test (seed {seed})", flush=True)
    return train_val_split(full, val_fraction=test_fraction, seed=seed)
