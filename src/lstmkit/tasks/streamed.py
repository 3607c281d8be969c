"""`lstmkit train --stream`: the run's data as token rows on disk, for corpora larger than memory.

`load_streamed` returns what `lstmkit.tasks.run.load_data` returns, (train, validation, test)
datasets, the same examples in the same order with the same seed, but each dataset's `texts` is
a view of a memory-mapped token folder (`lstmkit.data.token_file.TokenRows`) instead of a list of
strings: the file is vectorized once into LSTMKIT_HOME/token-files (`lstmkit.data.corpus`), its
vocabulary adapted to the training split as `train` adapts it, and later runs on the same file
and settings open the cache. Training, validation and testing then read their batches from it
(`lstmkit.data.batching`), across processes each process only its rows of every batch.

The splits are drawn by the same functions on the labels alone (`Dataset.shuffled`,
`train_val_split` over row numbers), so a run with --stream trains on what the same run without it
trains on, batch for batch: the same weights. What it does not do yet: IMDB and class folders
(they fit in memory), self-training, --pretrained.

    >>> train, val, test = load_streamed(config, "reviews.csv", None, {}, time.perf_counter())  # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from lstmkit.data.corpus import load_corpus
from lstmkit.data.dataset import Dataset, train_val_split
from lstmkit.data.imdb import imdb_source
from lstmkit.errors import LstmkitError
from lstmkit.nn import parallel
from lstmkit.tasks.classifier import build_model

TEST_FRACTION = 0.2  # as `load_splits` holds out from a file without --test-data


def load_streamed(config, data, test_data, reading, t_start):
    """(train, validation, test) datasets whose texts are token rows; `reading`: the columns, format
    and header of --data and --test-data, as `load_data` takes them."""
    path = _stream_file(data, "--data")
    _check_supported(config)
    if reading.get("multi_label"):
        raise LstmkitError("--stream reads one label per text; train multi-label data without --stream")
    reading = {key: value for key, value in reading.items() if key != "multi_label"}
    seed, validation = int(config["seed"]), str(config["validation"])
    vectorizer = build_model(config, 2, 1).vectorizer  # the run's, unadapted: its config keys the cache
    longest = max(int(config["sequence_length"]), int(config.get("inference_length") or 0))

    def splits(labels, class_names):
        return _splits(labels, class_names, seed, validation, held_out=test_data is None)

    def training_rows(labels, class_names):
        rows = np.zeros(len(labels), bool)
        rows[splits(labels, class_names)[0].texts] = True
        return rows

    if test_data is None:
        print(
            f"{data} has no test split: holding out a stratified {TEST_FRACTION:.0%} as test (seed {seed})", flush=True
        )
    corpus = _in_turn(
        lambda: load_corpus(
            path,
            reading,
            vectorizer,
            vocabulary_rows=training_rows,
            vocabulary_from={
                "seed": seed,
                "validation": validation,
                "test_fraction": None if test_data else TEST_FRACTION,
            },
            max_length=longest,
        )
    )
    if config.get("group_validation") and validation != "test":
        print(
            "validation: a random split (--group-validation groups IMDB reviews by movie; this data has no IMDB file names)",
            flush=True,
        )
    train, val, test = (
        None if part is None else replace(part, texts=corpus.rows[part.texts], source=str(path), empty=corpus.empty)
        for part in splits(corpus.labels, corpus.class_names)
    )
    if test_data is not None:
        test = _test_file(test_data, reading, vectorizer, longest, seed, train.class_names)
        val = test if validation == "test" else val
    _say(train, val, test, t_start, corpus.cached)
    return train, val, test


def _stream_file(data, flag) -> Path:
    path = Path(str(data)).expanduser()
    if imdb_source(data) is not None or not path.is_file():
        raise LstmkitError(
            f"--stream reads one CSV, TSV, JSON Lines or fastText file, and {flag} {data} is not one; "
            "train without --stream (IMDB and class folders fit in memory)"
        )
    return path


def _check_supported(config):
    if int(config.get("self_training", 0)):
        raise LstmkitError("--stream does not self-train yet; use --self-training 0, or train without --stream")
    if config.get("pretrained"):
        raise LstmkitError("--stream does not adopt a pretrained vocabulary yet; train without --stream")


def _splits(labels, class_names, seed, validation, *, held_out):
    """(train, validation, test) as datasets of row numbers, drawn as `load_splits` and `load_data`
    draw them (test None without held_out: it is --test-data's)."""
    full = Dataset(np.arange(len(labels)), labels, list(class_names)).shuffled(seed)
    train, test = train_val_split(full, TEST_FRACTION, seed) if held_out else (full, None)
    if validation == "test":
        return train, test, test
    train, val = train_val_split(train, val_fraction=float(validation), seed=seed)
    return train, val, test


def _test_file(test_data, reading, vectorizer, longest, seed, class_names):
    """--test-data as token rows, encoded with the training vocabulary, its labels mapped to the training classes."""
    path = _stream_file(test_data, "--test-data")
    corpus = _in_turn(lambda: load_corpus(path, reading, vectorizer, max_length=longest, min_classes=1))
    test = Dataset(corpus.rows, corpus.labels, corpus.class_names, source=str(path), empty=corpus.empty)
    return test.shuffled(seed).relabeled(class_names, what=f"--test-data {test_data}", owner="the training data")


def _in_turn(load):
    """Process 0 loads (vectorizing the corpus if it is not cached) before the others, which then
    open its cache instead of vectorizing it again side by side."""
    if parallel.is_writer():
        result = load()
        parallel.barrier("lstmkit: token cache written")
        return result
    parallel.barrier("lstmkit: token cache written")
    return load()


def _say(train, val, test, t_start, cached):
    where = "token cache opened" if cached else "vectorized into the token cache"
    print(
        f"data: {len(train.texts):,} train, {len(val.texts):,} validation{' (the test split)' if val is test else ''}, "
        f"{len(test.texts):,} test; classes {list(train.class_names)} ({where}, {time.perf_counter() - t_start:.1f} s)",
        flush=True,
    )
