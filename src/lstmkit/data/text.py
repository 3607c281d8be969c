"""TextVectorizer: text to integer ids, with the semantics of Keras `TextVectorization` (int mode).

Shape legend: N texts, L output sequence length.

The pipeline per text is the one Keras runs, step for step:

    standardize   'lower_and_strip_punctuation' (default), 'lower', 'strip_punctuation', None,
                  or a callable str -> str
    split         'whitespace', 'character', or a callable str -> list[str]
    ngrams        None, n (all widths 1..n) or a tuple of widths; tokens joined by one space
    lookup        index 0 is padding (''), 1 is the single OOV token ('[UNK]'), learned tokens
                  from 2 on

Keras details this module reproduces exactly (checked against keras 3 / TF 2.21):
- lowercasing is ASCII only (`tf.strings.lower` works on bytes): 'École' stays 'École';
- the punctuation removed is the ASCII set !"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ and nothing else;
- whitespace splitting breaks on the six ASCII blanks (space \\t \\n \\r \\v \\f) only, not on
  NO-BREAK SPACE or the other Unicode spaces that `str.split()` knows;
- the vocabulary is sorted by count descending, ties by the token's UTF-8 bytes descending
  (`np.lexsort((tokens, counts))[::-1]` in Keras); '' and '[UNK]' are never learned;
- `max_tokens` counts the two special tokens, so it keeps max_tokens - 2 learned tokens.

Because every one of these steps touches ASCII bytes only, the built-in modes run on UTF-8
bytes: one `bytes.translate` lowercases and strips, and `bytes.split()` splits on exactly the
ASCII blanks. That is what makes it as fast as the TensorFlow kernels.
The steps themselves (standardize, HTML breaks, n-grams, vocabulary order, padding) are `lstmkit.data.tokens`.

    >>> v = TextVectorizer(output_sequence_length=4)
    >>> v.adapt(["The cat sat.", "the CAT!"])
    >>> v.vocabulary
    ['', '[UNK]', 'the', 'cat', 'sat']
    >>> v(["the dog sat"]).tolist()
    [[2, 1, 4, 0]]
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from lstmkit.atomic import write_bytes, write_json
from lstmkit.data.tokens import (
    PUNCTUATION,
    keras_order,
    make_ngrams,
    ngram_widths,
    pad_sequences,
    scatter,
    standardize_text,
    strip_html_breaks,
    translation,
)
from lstmkit.errors import LstmkitError

# PUNCTUATION, strip_html_breaks, make_ngrams and pad_sequences stay importable from here, as before tokens.py.
__all__ = [
    "CONFIG_FILE", "OOV_ID", "OOV_TOKEN", "PAD_ID", "PAD_TOKEN", "PUNCTUATION", "SPLIT_MODES", "STANDARDIZE_MODES",
    "VOCAB_FILE", "TextVectorizer", "make_ngrams", "pad_sequences", "strip_html_breaks",
]  # fmt: skip

PAD_TOKEN = ""
OOV_TOKEN = "[UNK]"
PAD_ID, OOV_ID = 0, 1  # the ids of PAD_TOKEN and OOV_TOKEN in every vocabulary
VOCAB_FILE = "vocabulary.txt"
CONFIG_FILE = "vectorizer.json"

STANDARDIZE_MODES = ("lower_and_strip_punctuation", "lower", "strip_punctuation", None)
SPLIT_MODES = ("whitespace", "character")
_SEP = b"\x00"  # ends each text when a whole batch is split at once (see _encode_joined)


class TextVectorizer:
    """Learn a vocabulary from texts and turn texts into padded int32 id arrays (Keras int mode).

    Args:
        max_tokens: vocabulary size including '' and '[UNK]'; None keeps every token.
        standardize: 'lower_and_strip_punctuation', 'lower', 'strip_punctuation', None, or a
            callable str -> str (callables cannot be saved).
        split: 'whitespace', 'character', or a callable str -> list[str] (cannot be saved).
        output_sequence_length: L; outputs are truncated or right-padded with 0 to L. None pads
            to the longest text of each call.
        ngrams: None, an int n (widths 1..n) or a tuple of widths.
        strip_html: replace '<br />' tags by a space before standardizing (not Keras: off by
            default, so the Keras-compatible mode keeps the token 'br').

    >>> v = TextVectorizer(max_tokens=3)
    >>> v.adapt(["a a b"]); v.vocabulary
    ['', '[UNK]', 'a']
    """

    def __init__(
        self,
        max_tokens: int | None = None,
        standardize: str | Callable[[str], str] | None = "lower_and_strip_punctuation",
        split: str | Callable[[str], list[str]] = "whitespace",
        output_sequence_length: int | None = None,
        ngrams: int | tuple[int, ...] | None = None,
        strip_html: bool = False,
    ):
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 3):
            raise LstmkitError(f"max_tokens must be an int >= 3 (it counts '' and '[UNK]') or None, got {max_tokens!r}")
        if not (callable(standardize) or standardize in STANDARDIZE_MODES):
            raise LstmkitError(f"standardize must be one of {STANDARDIZE_MODES} or a callable, got {standardize!r}")
        if not (callable(split) or split in SPLIT_MODES):
            raise LstmkitError(f"split must be one of {SPLIT_MODES} or a callable, got {split!r}")
        if output_sequence_length is not None and (
            not isinstance(output_sequence_length, int) or output_sequence_length < 1
        ):
            raise LstmkitError(f"output_sequence_length must be a positive int or None, got {output_sequence_length!r}")
        self.max_tokens = max_tokens
        self.standardize = standardize
        self.split = split
        self.output_sequence_length = output_sequence_length
        self.ngrams = ngram_widths(ngrams)
        self._ngrams_arg = list(ngrams) if isinstance(ngrams, (tuple, list)) else ngrams
        self.strip_html = bool(strip_html)
        self._vocab: list[str] = [PAD_TOKEN, OOV_TOKEN]
        self._index: dict = {}
        self._adapted = False

    # ---- vocabulary -----------------------------------------------------------------------

    @property
    def vocabulary(self) -> list[str]:
        """The vocabulary, index 0 '' and 1 '[UNK]', then learned tokens by count descending."""
        return list(self._vocab)

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included (the embedding's input dimension)."""
        return len(self._vocab)

    def set_vocabulary(self, tokens: Sequence[str]) -> None:
        """Use a given vocabulary; a leading '' and '[UNK]' are added when missing."""
        tokens = list(tokens)
        if tokens[:2] == [PAD_TOKEN, OOV_TOKEN]:
            tokens = tokens[2:]
        if PAD_TOKEN in tokens or OOV_TOKEN in tokens:
            raise LstmkitError(
                "vocabulary holds '' or '[UNK]' away from indices 0 and 1; remove them from the token list"
            )
        if len(set(tokens)) != len(tokens):
            raise LstmkitError("vocabulary holds duplicate tokens; each token must appear once")
        self._install([PAD_TOKEN, OOV_TOKEN] + tokens, [self._key(t) for t in tokens])

    def _install(self, vocab: list[str], keys: list) -> None:
        """Set the vocabulary and its lookup table (keys: the learned tokens as lookup keys)."""
        self._vocab = vocab
        self._index = dict(zip(keys, range(2, len(keys) + 2)))
        self._adapted = True

    def adapt(self, texts: Iterable[str]) -> None:
        """Learn the vocabulary from texts (replaces any previous one).

        >>> v = TextVectorizer(); v.adapt(["b a", "b"]); v.vocabulary
        ['', '[UNK]', 'b', 'a']
        """
        self.adapt_chunks([texts])

    def adapt_chunks(self, chunks: Iterable[Iterable[str]]) -> None:
        """`adapt` over texts that come a chunk (a list of texts) at a time, the same vocabulary:
        counts add up, and Keras's order depends on the counts alone. A corpus larger than memory
        streams through it (`lstmkit.data.corpus`).

        >>> v = TextVectorizer(); v.adapt_chunks([["b a"], ["b"]]); v.vocabulary
        ['', '[UNK]', 'b', 'a']
        """
        counts: Counter = Counter()
        for chunk in chunks:
            texts = _as_text_list(chunk)
            if not self._fast:
                for doc in self._tokenize_slow(texts):
                    counts.update(doc)
                continue
            # Tokens never span texts, so one split of all texts joined by a space counts them all.
            if self.strip_html:  # per text: a tag must not form across the joining space
                texts = [strip_html_breaks(t) for t in texts]
            counts.update(self._standardize_bytes(" ".join(texts)).split())
        for special in (b"[UNK]", PAD_TOKEN, OOV_TOKEN):  # never learned ('' cannot come out of split())
            counts.pop(special, None)
        keys = list(counts)  # UTF-8 bytes on the fast path, str otherwise (`_key`)
        tokens = [t.decode("utf-8", "surrogatepass") for t in keys] if self._fast else keys
        tokens_b = keys if self._fast else [t.encode("utf-8", "surrogatepass") for t in keys]
        order = keras_order(tokens_b, np.fromiter(counts.values(), dtype=np.int64, count=len(counts)))
        if self.max_tokens is not None:
            order = order[: self.max_tokens - 2]
        self._install([PAD_TOKEN, OOV_TOKEN] + [tokens[i] for i in order], [keys[i] for i in order])

    # ---- encoding -------------------------------------------------------------------------

    def __call__(self, texts: Iterable[str] | str) -> np.ndarray:
        """Encode texts to ids, int32 (N, L), right-padded with 0 and truncated to L.

        >>> v = TextVectorizer(); v.adapt(["a a b"]); v(["b", "a b c"]).tolist()
        [[3, 0, 0], [2, 3, 1]]
        """
        if isinstance(texts, str):
            raise LstmkitError("TextVectorizer expects a list of texts, got one string; wrap it in a list")
        flat, lengths = self.encode_flat(texts)
        length = self.output_sequence_length
        if length is None:
            length = int(lengths.max()) if len(lengths) else 0
        return scatter(flat, lengths, length)

    def encode_ragged(self, texts: Iterable[str], max_length: int | None = None) -> list[np.ndarray]:
        """Encode texts to one int32 array per text, unpadded (truncated to L when L is set).

        max_length: truncate to this many tokens instead of L (0: keep every token).

        >>> v = TextVectorizer(); v.adapt(["a a b"]); [d.tolist() for d in v.encode_ragged(["b", "a x"])]
        [[3], [2, 1]]
        """
        flat, lengths = self.encode_flat(texts, max_length)
        return np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []

    def encode_flat(self, texts, max_length=None) -> tuple[np.ndarray, np.ndarray]:
        """All ids of all texts back to back, int32 (sum of lengths,), and the lengths int64 (N,).

        max_length as `encode_ragged`'s. A token file (`lstmkit.data.token_file`) stores this.
        """
        if not self._adapted:
            raise LstmkitError("TextVectorizer has no vocabulary yet; call adapt(texts) or load a saved one first")
        texts = _as_text_list(texts)
        if not texts:
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        limit = self.output_sequence_length if max_length is None else max_length
        if self._fast:
            if self.strip_html:
                texts = [strip_html_breaks(t) for t in texts]
            table, delete = translation(self.standardize)
            if not limit and _SEP not in self._index and not any("\x00" in t for t in texts):
                return self._encode_joined(texts, table, delete)
            # split(None, L) stops after L tokens: the rest of a long text is never cut into tokens.
            if limit:
                docs = [
                    t.encode("utf-8", "surrogatepass").translate(table, delete).split(None, limit)[:limit]
                    for t in texts
                ]
            else:
                docs = [t.encode("utf-8", "surrogatepass").translate(table, delete).split() for t in texts]
        else:
            docs = [doc[:limit] for doc in self._tokenize_slow(texts)]
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
        # dict.get with a default of 1 maps unknown tokens to '[UNK]' without a Python-level call.
        tokens = itertools.chain.from_iterable(docs)
        flat = np.fromiter(map(self._index.get, tokens, itertools.repeat(1)), dtype=np.int32, count=int(lengths.sum()))
        return flat, lengths

    def _encode_joined(self, texts: list[str], table: bytes, delete: bytes) -> tuple[np.ndarray, np.ndarray]:
        """`encode_flat` for untruncated output: one split of all texts, joined by a NUL token.

        About 15% faster than splitting text by text; only valid when no text (and no vocabulary
        token) holds NUL, since the NUL token marks where each text ends.
        """
        joined = " \x00 ".join(texts).encode("utf-8", "surrogatepass").translate(table, delete) + b" \x00"
        tokens = joined.split()
        lookup = {**self._index, _SEP: -1}
        ids = np.fromiter(map(lookup.get, tokens, itertools.repeat(1)), dtype=np.int32, count=len(tokens))
        ends = np.flatnonzero(ids == -1)
        lengths = np.diff(ends, prepend=-1) - 1
        return ids[ids != -1], lengths

    def tokenize(self, text: str) -> list[str]:
        """The tokens (after standardize, split and ngrams) that one text is turned into.

        >>> TextVectorizer(ngrams=2).tokenize("A b, c")
        ['a', 'b', 'c', 'a b', 'b c']
        """
        return next(iter(self._tokenize_slow([text])))

    # ---- persistence ----------------------------------------------------------------------

    def get_config(self) -> dict:
        """Constructor arguments as a JSON-able dict (callables appear by name, not savable)."""
        return {
            "max_tokens": self.max_tokens,
            "standardize": _describe(self.standardize),
            "split": _describe(self.split),
            "output_sequence_length": self.output_sequence_length,
            "ngrams": self._ngrams_arg,
            "strip_html": self.strip_html,
        }

    def save(self, directory: str | os.PathLike) -> Path:
        """Write `vocabulary.txt` (one token per line, from index 2) and `vectorizer.json`.

        Each file is written to a temporary file and moved into place, so a crash never leaves
        half a vocabulary behind. Returns the directory.
        """
        for name, fn in (("standardize", self.standardize), ("split", self.split)):
            if callable(fn):
                raise LstmkitError(
                    f"cannot save a TextVectorizer whose {name} is a callable ({_describe(fn)}); use a built-in mode or rebuild it in code and call set_vocabulary"
                )
        if not self._adapted:
            raise LstmkitError("cannot save a TextVectorizer with no vocabulary; call adapt(texts) first")
        bad = [t for t in self._vocab[2:] if "\n" in t or "\r" in t]
        if bad:
            raise LstmkitError(
                f"vocabulary token {bad[0]!r} holds a line break and cannot be saved one per line; use split='whitespace'"
            )
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        vocab_text = "".join(t + "\n" for t in self._vocab[2:])
        config = dict(self.get_config(), vocab_size=self.vocab_size, format=1)
        write_bytes(directory / VOCAB_FILE, vocab_text.encode("utf-8"))
        write_json(directory / CONFIG_FILE, config)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> TextVectorizer:
        """Read a vectorizer written by `save`."""
        directory = Path(directory)
        try:
            config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
            vocab_text = (directory / VOCAB_FILE).read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise LstmkitError(
                f"no saved vectorizer in {directory}: {Path(e.filename).name} is missing; pass the directory that TextVectorizer.save wrote"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise LstmkitError(
                f"vectorizer files in {directory} are corrupted ({e}); save the vectorizer again"
            ) from None
        expected = config.pop("vocab_size", None)
        config.pop("format", None)
        tokens = vocab_text.split("\n")[:-1] if vocab_text else []
        if expected is not None and len(tokens) + 2 != expected:
            raise LstmkitError(
                f"{directory / VOCAB_FILE} holds {len(tokens) + 2} ids but the config says {expected}; the file is truncated, save the vectorizer again"
            )
        if isinstance(config.get("ngrams"), list):
            config["ngrams"] = tuple(config["ngrams"])
        vectorizer = cls(**config)
        vectorizer.set_vocabulary(tokens)
        return vectorizer

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"TextVectorizer({args}) with {self.vocab_size} ids"

    # ---- internals ------------------------------------------------------------------------

    @property
    def _fast(self) -> bool:
        """Built-in modes without ngrams run on bytes; the rest goes token by token."""
        return not callable(self.standardize) and self.split == "whitespace" and self.ngrams is None

    def _key(self, token: str):
        """Lookup key of a token: UTF-8 bytes on the fast path, the str otherwise."""
        return token.encode("utf-8", "surrogatepass") if self._fast else token

    def _standardize_bytes(self, text: str) -> bytes:
        """One text standardized, as UTF-8 bytes (one C-level translate, see the module doc)."""
        return text.encode("utf-8", "surrogatepass").translate(*translation(self.standardize))

    def _tokenize_slow(self, texts: list[str]):
        """Yield each text's token list: standardize, split, ngrams, one text at a time."""
        for text in texts:
            if self.strip_html:
                text = strip_html_breaks(text)
            text = standardize_text(text, self.standardize)
            if callable(self.split):
                tokens = list(self.split(text))
            elif self.split == "character":
                tokens = list(text)
            else:
                tokens = [t.decode("utf-8", "surrogatepass") for t in text.encode("utf-8", "surrogatepass").split()]
            if self.ngrams is not None:
                tokens = make_ngrams(tokens, self.ngrams)
            yield tokens


def _as_text_list(texts) -> list[str]:
    if isinstance(texts, str):
        raise LstmkitError("expected a list of texts, got one string; wrap it in a list")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            if isinstance(t, bytes):
                texts[i] = t.decode("utf-8", "replace")
            else:
                raise LstmkitError(f"text {i} is a {type(t).__name__}, not a str; pass a list of strings")
    return texts


def _describe(fn) -> str | None:
    if callable(fn):
        return f"<callable {getattr(fn, '__qualname__', type(fn).__name__)}>"
    return fn
