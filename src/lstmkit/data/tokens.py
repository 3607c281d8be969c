"""The vectorizer's steps as plain functions: ASCII standardization, HTML breaks, n-grams, Keras's
vocabulary order, padding.

Shape legend: N texts, L output sequence length.

`lstmkit.data.text` (the `TextVectorizer`) runs these; its docstring has the Keras semantics they
reproduce: lowercasing and punctuation are ASCII only, so standardizing is one `bytes.translate`.

    >>> standardize_text("École, CAFÉ!", "lower_and_strip_punctuation")
    'École cafÉ'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from lstmkit.errors import LstmkitError

# Keras's regex: [!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\'] -- `,-\.` is a range, so ',', '-', '.'.
PUNCTUATION = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_LOWER_TABLE = bytes.maketrans(bytes(range(65, 91)), bytes(range(97, 123)))
_IDENTITY_TABLE = bytes(range(256))
# IMDB writes line breaks as '<br />'; Keras keeps them as the token 'br'.
_HTML_BREAK = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)


def strip_html_breaks(text: str) -> str:
    """Replace HTML line breaks ('<br />', '<br>', '<BR/>') by one space.

    >>> strip_html_breaks("Good.<br /><br />Bad.")
    'Good.  Bad.'
    """
    return _HTML_BREAK.sub(" ", text)


def translation(mode) -> tuple[bytes, bytes]:
    """(table, delete) for bytes.translate: A-Z to a-z when lowering, ASCII punctuation deleted."""
    lower = mode in ("lower", "lower_and_strip_punctuation")
    strip = mode in ("strip_punctuation", "lower_and_strip_punctuation")
    return (_LOWER_TABLE if lower else _IDENTITY_TABLE), (PUNCTUATION if strip else b"")


def standardize_text(text: str, mode) -> str:
    """Apply one standardize mode to one str (Keras semantics: ASCII-only lower and strip)."""
    if callable(mode):
        return mode(text)
    if mode is None:
        return text
    return text.encode("utf-8", "surrogatepass").translate(*translation(mode)).decode("utf-8", "surrogatepass")


def make_ngrams(tokens: list[str], widths: tuple[int, ...]) -> list[str]:
    """All n-grams of each width in turn, joined by one space (as `tf.strings.ngrams`).

    >>> make_ngrams(["a", "b", "c"], (1, 2))
    ['a', 'b', 'c', 'a b', 'b c']
    """
    out: list[str] = []
    for n in widths:
        out.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return out


def pad_sequences(docs: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Right-pad (with 0) or truncate int sequences into one int32 (N, length) array.

    >>> pad_sequences([np.array([5, 6, 7]), np.array([8])], 2).tolist()
    [[5, 6], [8, 0]]
    """
    lengths = np.fromiter((min(len(d), length) for d in docs), dtype=np.int64, count=len(docs))
    flat = (
        np.concatenate([np.asarray(d, dtype=np.int32)[:length] for d in docs])
        if lengths.sum()
        else np.zeros(0, np.int32)
    )
    return scatter(flat, lengths, length)


def scatter(flat: np.ndarray, lengths: np.ndarray, length: int) -> np.ndarray:
    """Place back-to-back sequences (each already <= length) into a zero int32 (N, length) array."""
    out = np.zeros((len(lengths), length), dtype=np.int32)
    if len(flat) and len(lengths) * length <= 4 * len(flat):
        out[np.arange(length) < lengths[:, None]] = flat  # dense enough: one boolean mask
    elif len(flat):
        # Token j of row r goes to flat position r * length + j: its index in `flat` plus the
        # row's offset (r * length - tokens before row r). O(tokens), not O(N * length).
        offsets = np.arange(len(lengths)) * length - (np.cumsum(lengths) - lengths)
        out.reshape(-1)[np.arange(len(flat)) + np.repeat(offsets, lengths)] = flat
    return out


def keras_order(tokens_b: list[bytes], counts: np.ndarray) -> np.ndarray:
    """Indices sorting tokens by count descending, ties by UTF-8 bytes descending (as Keras)."""
    if not tokens_b:
        return np.zeros(0, dtype=np.int64)
    # Rank the bytes once (Python sort), then a pure integer lexsort: same order as Keras's
    # np.lexsort((tokens, counts))[::-1], whose stable ascending sort reversed gives
    # ties in descending token order.
    byte_rank = np.empty(len(tokens_b), dtype=np.int64)
    byte_rank[sorted(range(len(tokens_b)), key=tokens_b.__getitem__)] = np.arange(len(tokens_b))
    return np.lexsort((byte_rank, counts))[::-1]


def ngram_widths(ngrams) -> tuple[int, ...] | None:
    """The widths an `ngrams` argument asks for: None, 1..n for an int n, or the tuple given.

    >>> ngram_widths(3), ngram_widths((2,)), ngram_widths(None)
    ((1, 2, 3), (2,), None)
    """
    if ngrams is None:
        return None
    if isinstance(ngrams, int) and not isinstance(ngrams, bool) and ngrams >= 1:
        return tuple(range(1, ngrams + 1))
    if isinstance(ngrams, (tuple, list)) and ngrams and all(isinstance(n, int) and n >= 1 for n in ngrams):
        return tuple(ngrams)
    raise LstmkitError(f"ngrams must be None, a positive int or a tuple of positive ints, got {ngrams!r}")
