"""Unlabeled text: the sources self-training and pretraining read, labels ignored."""

from __future__ import annotations

from pathlib import Path

from lstmkit.data.dataset import decode_text
from lstmkit.data.formats import read_text_file
from lstmkit.data.imdb import imdb_source, load_imdb, read_bytes
from lstmkit.data.inputs import table_texts, text_format
from lstmkit.data.sources import load_splits
from lstmkit.errors import LstmkitError


def read_unlabeled(source, *, text_column=None, seed=0, file_format=None, header=None) -> list[str]:
    """Texts of one unlabeled source, labels ignored.

    IMDB ('imdb', an aclImdb folder or archive): its 50,000 'unsup' reviews. A folder: every .txt
    file under it, one text per file. A file (gzipped or not): one text per non-empty line, or a
    table's text column (--text-column, a name or 0-based index, or autodetected), its format
    `file_format` or sniffed as `lstmkit.data.inputs.text_format` says.
    """

    imdb = imdb_source(source)
    if imdb is not None:
        return load_imdb(imdb, split="unsup", seed=seed).texts
    path = Path(source).expanduser()
    if not path.exists():
        raise LstmkitError(
            f"{path} does not exist; pass 'imdb', an aclImdb folder or .tar.gz, a .txt file (one text per line), a CSV/TSV/JSON Lines/fastText file, or a folder of .txt files"
        )
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file() and not p.name.startswith("."))
        texts = [decode_text(read_bytes(p))[0] for p in files]
    elif text_format(path, file_format) == "txt":
        texts = read_text_file(path)[0].splitlines()
    else:
        rows = table_texts(path, text_format(path, file_format), text_column=text_column, header=header)
        texts = [text for _, text in rows]
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise LstmkitError(f"{path} holds no text; pass a source with at least one non-empty text")
    return texts


def pretraining_texts(
    data=None, unlabeled=(), *, text_column=None, seed=0, verbose=True, file_format=None, header=None
) -> list[str]:
    """All texts to pretrain on: the training part of labelled `data`, and every `unlabeled` source.

    data is read as `lstmkit train --data` reads it, and only the part that run trains on is used
    (IMDB's train split; the 80% of a user's file that `train --seed` keeps), so its test texts
    never reach the LM. file_format and header say how to read data (see `load_dataset`);
    unlabeled files are sniffed.
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
            else load_splits(data, text_column=text_column, seed=seed, file_format=file_format, header=header)[0]
        )
        texts += list(train.texts)
        if verbose:
            print(f"{data}: {len(train.texts):,} training texts", flush=True)
    for source in unlabeled:
        more = read_unlabeled(source, text_column=text_column, seed=seed)  # sniffed: file_format is data's
        texts += more
        if verbose:
            print(f"{source}: {len(more):,} unlabeled texts", flush=True)
    return texts
