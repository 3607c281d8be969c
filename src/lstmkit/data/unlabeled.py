"""Unlabeled text: the sources self-training and pretraining read, labels ignored."""

from __future__ import annotations

from pathlib import Path

from lstmkit.data.dataset import decode_text
from lstmkit.data.files import (
    TEXT_COLUMNS,
    pick_column,
    read_delimited,
    read_json_lines,
)
from lstmkit.data.imdb import imdb_source, load_imdb, read_bytes
from lstmkit.data.sources import load_splits
from lstmkit.errors import LstmkitError


def read_unlabeled(source, *, text_column=None, seed=0) -> list[str]:
    """Texts of one unlabeled source, labels ignored.

    IMDB ('imdb', an aclImdb folder or archive): its 50,000 'unsup' reviews. A .txt file: one text
    per non-empty line. A .csv/.tsv/.jsonl file: its text column (--text-column or autodetected).
    A folder: every .txt file under it, one text per file.
    """

    imdb = imdb_source(source)
    if imdb is not None:
        return load_imdb(imdb, split="unsup", seed=seed).texts
    path = Path(source).expanduser()
    if not path.exists():
        raise LstmkitError(
            f"{path} does not exist; pass 'imdb', an aclImdb folder or .tar.gz, a .txt file (one text per line), a .csv/.tsv/.jsonl file, or a folder of .txt files"
        )
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file() and not p.name.startswith("."))
        texts = [decode_text(read_bytes(p))[0] for p in files]
    elif path.suffix.lower() == ".txt":
        texts = decode_text(read_bytes(path))[0].splitlines()
    elif path.suffix.lower() in (".csv", ".tsv", ".tab", ".jsonl", ".ndjson", ".json"):
        text = decode_text(read_bytes(path))[0].removeprefix("\ufeff")
        if path.suffix.lower() in (".csv", ".tsv", ".tab"):
            columns, rows = read_delimited(text, "," if path.suffix.lower() == ".csv" else "\t", path)
        else:
            columns, rows = read_json_lines(text, path)
        column = pick_column(columns, text_column, TEXT_COLUMNS, "text", path)
        texts = [r.get(column) if isinstance(r.get(column), str) else "" for r in rows]
    else:
        raise LstmkitError(
            f"{path.name}: unknown file type '{path.suffix}'; use .txt (one text per line), .csv, .tsv, .jsonl, or a folder of .txt files"
        )
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise LstmkitError(f"{path} holds no text; pass a source with at least one non-empty text")
    return texts


def pretraining_texts(data=None, unlabeled=(), *, text_column=None, seed=0, verbose=True) -> list[str]:
    """All texts to pretrain on: the training part of labelled `data`, and every `unlabeled` source.

    data is read as `lstmkit train --data` reads it, and only the part that run trains on is used
    (IMDB's train split; the 80% of a user's file that `train --seed` keeps), so its test texts
    never reach the LM.
    """

    if data is None and not unlabeled:
        raise LstmkitError(
            "no text to pretrain on: pass --data (labelled data, its training part) and/or --unlabeled SOURCE"
        )
    texts = []
    if data is not None:
        imdb = imdb_source(data)
        train = (
            load_imdb(imdb, split="train", seed=seed)
            if imdb is not None
            else load_splits(data, text_column=text_column, seed=seed)[0]
        )
        texts += list(train.texts)
        if verbose:
            print(f"{data}: {len(train.texts):,} training texts", flush=True)
    for source in unlabeled:
        more = read_unlabeled(source, text_column=text_column, seed=seed)
        texts += more
        if verbose:
            print(f"{source}: {len(more):,} unlabeled texts", flush=True)
    return texts
