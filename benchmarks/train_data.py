"""The data of the training benchmark (bench_train.py): IMDB or its short-text corpus, as id matrices.

Two corpora, both from the 25,000 IMDB train reviews (shuffled once, seed 0):

- `imdb`: the reviews whole (230 words on average).
- `short`: each review's first sentence with at least 3 words (`make_short_texts.py`, about
  20 words), the kind of text many users have: titles, tweets, support tickets.

Vectorized with `lstmkit.data.text.TextVectorizer` as the model's preset does it: the seed's
(vocabulary 100, length 200, HTML kept) or the default preset's (vocabulary 10,000, length 800,
HTML line breaks stripped). Ids are right padded with 0; [UNK] is 1. The matrix is then cut to
its longest row (a corpus of short texts padded to 800 would make every padded peer compute
hundreds of empty steps that no user would pad to), and saved as x (N, W) int32, y (N,) int32.

    >>> ids = np.array([[5, 6, 0, 0], [7, 0, 0, 0]], np.int32); trim_padding(ids).shape
    (2, 2)
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmkit.data.text import TextVectorizer

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED = 0
CORPORA = ("imdb", "short")


@dataclass(frozen=True)
class Vectorizing:
    """How texts become ids: the vocabulary size, the longest input, and whether HTML breaks go."""

    max_tokens: int
    length: int
    strip_html: bool


SEED_VECTORIZING = Vectorizing(100, 200, False)  # the seed notebook's TextVectorization
DEFAULT_VECTORIZING = Vectorizing(10000, 800, True)  # lstmkit.tasks.presets.DEFAULT


def find_imdb(explicit: str | None) -> Path:
    """The directory (or archive) of IMDB: --imdb, else $LSTMKIT_IMDB, else ../shared/data/imdb."""
    candidate = explicit or os.environ.get("LSTMKIT_IMDB") or REPO_ROOT.parent / "shared/data/imdb"
    path = Path(candidate)
    if not path.exists():
        sys.exit(
            f"IMDB not found at {path}: pass --imdb DIR or set LSTMKIT_IMDB to the folder "
            "holding aclImdb_labeled.tar.gz"
        )
    return path


def load_corpus(imdb: Path, corpus: str) -> tuple[list[str], np.ndarray, str]:
    """(texts, labels (N,) int32 with 1 = positive, where they came from) of one corpus."""
    from lstmkit.data.imdb import load_imdb

    data = load_imdb(imdb, split="train", seed=SEED)
    texts, labels = list(data.texts), np.asarray(data.labels, dtype=np.int32)
    if corpus == "imdb":
        return texts, labels, "lstmkit.data.imdb.load_imdb (train)"
    from make_short_texts import MIN_WORDS, first_sentence

    sentences = [first_sentence(t) for t in texts]
    keep = np.array([len(s.split()) >= MIN_WORDS for s in sentences])
    kept = [s for s, k in zip(sentences, keep) if k]
    return kept, labels[keep], "first sentences of the IMDB train reviews (make_short_texts.first_sentence)"


def trim_padding(ids: np.ndarray) -> np.ndarray:
    """Cut the columns after the longest row's last real token (at least one column)."""
    real = np.flatnonzero((ids != 0).any(axis=0))
    return ids[:, : (real[-1] + 1 if len(real) else 1)]


def prepare(imdb: Path, corpus: str, vectorizing: Vectorizing, out_dir: Path) -> tuple[Path, dict]:
    """Vectorize one corpus into out_dir/<corpus>_<V>_<T>.npz; (path, what it holds)."""
    t0 = time.perf_counter()
    texts, labels, loader = load_corpus(imdb, corpus)
    vectorizer = TextVectorizer(
        max_tokens=vectorizing.max_tokens,
        output_sequence_length=vectorizing.length,
        strip_html=vectorizing.strip_html,
    )
    vectorizer.adapt(texts)
    ids = trim_padding(np.asarray(vectorizer(texts), dtype=np.int32))
    if len(vectorizer.vocabulary) != vectorizing.max_tokens:
        sys.exit(f"expected {vectorizing.max_tokens} tokens in the vocabulary, got {len(vectorizer.vocabulary)}")
    path = out_dir / f"{corpus}_{vectorizing.max_tokens}_{vectorizing.length}.npz"
    np.savez(path, x=ids, y=labels)
    lengths = (ids != 0).sum(axis=1)
    info = {
        "corpus": corpus,
        "reviews": len(labels),
        "positive": int(labels.sum()),
        "loader": loader,
        "vectorizer": "lstmkit.data.text.TextVectorizer",
        "max_tokens": vectorizing.max_tokens,
        "sequence_length": vectorizing.length,
        "width": int(ids.shape[1]),
        "mean_length": float(lengths.mean()),
        "median_length": float(np.median(lengths)),
        "full_length_share": float((lengths == vectorizing.length).mean()),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return path, info


def describe(info: dict, source: Path) -> str:
    """One line on the prepared data."""
    return (
        f"data: {info['corpus']}, {info['reviews']} texts from {source}, {info['loader']}, "
        f"{info['vectorizer']} ({info['max_tokens']} tokens, length {info['sequence_length']}); "
        f"mean length {info['mean_length']:.0f}, median {info['median_length']:.0f}, "
        f"{100 * info['full_length_share']:.0f}% at full length, padded to {info['width']} "
        f"({info['seconds']} s)"
    )
