"""TextVectorizer: Keras int-mode semantics, fast path == reference path, save and load."""

import json
import random

import numpy as np
import pytest

from lstmkit.data.text import (
    PUNCTUATION,
    TextVectorizer,
    make_ngrams,
    pad_sequences,
    strip_html_breaks,
)
from lstmkit.errors import LstmkitError


def reference_tokens(text, standardize="lower_and_strip_punctuation", split="whitespace", ngrams=None):
    """Keras's pipeline written the slow obvious way, character by character."""
    if standardize in ("lower", "lower_and_strip_punctuation"):
        text = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)
    if standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
        text = "".join(c for c in text if c not in PUNCTUATION.decode())
    if split == "whitespace":
        tokens, current = [], ""
        for c in text:
            if c in " \t\n\r\v\f":
                if current:
                    tokens.append(current)
                current = ""
            else:
                current += c
        tokens += [current] if current else []
    else:
        tokens = list(text)
    return make_ngrams(tokens, ngrams) if ngrams else tokens


def reference_vocabulary(texts, max_tokens=None, **kwargs):
    counts = {}
    for text in texts:
        for t in reference_tokens(text, **kwargs):
            counts[t] = counts.get(t, 0) + 1
    counts.pop("", None)
    counts.pop("[UNK]", None)
    # Count descending, ties by UTF-8 bytes descending.
    ordered = sorted(counts, key=lambda t: (counts[t], t.encode()), reverse=True)
    return ["", "[UNK]"] + ordered[: None if max_tokens is None else max_tokens - 2]


def random_texts(n, seed):
    rng = random.Random(seed)
    alphabet = list("abcABC xyz.,!?'-\"<>/") + [
        "é",
        "É",
        "ß",
        "\xa0",
        "\t",
        "\n",
        "\x1c",
        "—",
        "…",
        "日本",
        "\x00",
        "\r\n",
        "[UNK]",
        "br",
    ]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(n)]


def test_default_vocabulary_order_and_ids():
    v = TextVectorizer()
    v.adapt(["The cat sat.", "the CAT!", "a dog"])
    # 'the' and 'cat' twice; the rest once, ties by bytes descending.
    assert v.vocabulary == ["", "[UNK]", "the", "cat", "sat", "dog", "a"]
    assert v.vocab_size == 7
    ids = v(["the dog", "a zebra sat down"])
    assert ids.dtype == np.int32 and ids.shape == (2, 4)
    assert ids.tolist() == [[2, 5, 0, 0], [6, 1, 4, 1]]


def test_keras_lowercases_ascii_only_and_strips_ascii_punctuation_only():
    v = TextVectorizer()
    v.adapt(["École ÉCOLE straße — wait… don't", "U.S.A. e-mail [UNK]"])
    # 'ÉCOLE' lowercases to 'École' (only A-Z change), never to 'école'.
    assert v.vocabulary == ["", "[UNK]", "École", "—", "wait…", "usa", "unk", "straße", "email", "dont"]


def test_whitespace_split_is_ascii_only():
    v = TextVectorizer(standardize=None)
    v.adapt(["a\xa0b c\x1cd e\tf\ng\rh\vi\fj k\u2003l"])
    assert set(v.vocabulary[2:]) == {"a\xa0b", "c\x1cd", "e", "f", "g", "h", "i", "j", "k\u2003l"}


@pytest.mark.parametrize("standardize", ["lower_and_strip_punctuation", "lower", "strip_punctuation", None])
@pytest.mark.parametrize(
    "split,ngrams", [("whitespace", None), ("whitespace", 2), ("whitespace", (1, 3)), ("character", None)]
)
def test_matches_reference_implementation(standardize, split, ngrams):
    texts = random_texts(300, seed=1)
    v = TextVectorizer(standardize=standardize, split=split, ngrams=ngrams, max_tokens=None)
    v.adapt(texts)
    assert v.vocabulary == reference_vocabulary(texts, standardize=standardize, split=split, ngrams=v.ngrams)
    index = {t: i for i, t in enumerate(v.vocabulary)}
    docs = v.encode_ragged(texts)
    for text, doc in zip(texts, docs):
        expected = [index.get(t, 1) for t in reference_tokens(text, standardize, split, v.ngrams)]
        assert doc.tolist() == expected


def test_nul_characters_are_ordinary_characters():
    texts = ["a \x00 b", "\x00", "a b"]
    v = TextVectorizer()
    v.adapt(texts)
    assert v.vocabulary == reference_vocabulary(texts)
    assert "\x00" in v.vocabulary
    assert [d.tolist() for d in v.encode_ragged(texts)] == [
        [v.vocabulary.index(t) for t in reference_tokens(x)] for x in texts
    ]


def test_max_tokens_counts_special_tokens():
    v = TextVectorizer(max_tokens=4)
    v.adapt(["a b c d e a"])
    assert v.vocabulary == ["", "[UNK]", "a", "e"]
    assert v(["b a"]).tolist() == [[1, 2]]


def test_output_sequence_length_truncates_and_pads():
    v = TextVectorizer(output_sequence_length=3)
    v.adapt(["a b c d e"])
    ids = v(["a b c d e", "a", ""])
    assert ids.shape == (3, 3)
    assert ids[1].tolist()[1:] == [0, 0] and ids[2].tolist() == [0, 0, 0]
    assert [len(d) for d in v.encode_ragged(["a b c d e", "a"])] == [3, 1]


def test_unset_length_pads_to_longest_in_call():
    v = TextVectorizer()
    v.adapt(["a b c"])
    assert v(["a", "a b"]).shape == (2, 2)
    assert v([]).shape == (0, 0)


def test_unk_token_is_never_learned():
    v = TextVectorizer(standardize=None)
    v.adapt(["[UNK] [UNK] x"])
    assert v.vocabulary == ["", "[UNK]", "x"]
    assert v(["[UNK] x"]).tolist() == [[1, 2]]


def test_strip_html_breaks():
    assert strip_html_breaks("a<br />b<BR>c<br/>d") == "a b c d"
    keras_like = TextVectorizer()
    keras_like.adapt(["Good.<br /><br />Bad."])
    assert "br" in keras_like.vocabulary
    ours = TextVectorizer(strip_html=True)
    ours.adapt(["Good.<br /><br />Bad."])
    assert ours.vocabulary == ["", "[UNK]", "good", "bad"]


def test_callables_work_but_cannot_be_saved(tmp_path):
    v = TextVectorizer(standardize=str.upper, split=lambda s: s.split("-"))
    v.adapt(["a-b-a"])
    assert v.vocabulary == ["", "[UNK]", "A", "B"]
    with pytest.raises(LstmkitError, match="callable"):
        v.save(tmp_path / "v")


def test_save_and_load_round_trip(tmp_path):
    texts = random_texts(200, seed=2)
    v = TextVectorizer(max_tokens=50, output_sequence_length=7, ngrams=(1, 2), strip_html=True)
    v.adapt(texts)
    v.save(tmp_path / "vec")
    assert sorted(p.name for p in (tmp_path / "vec").iterdir()) == ["vectorizer.json", "vocabulary.txt"]
    lines = (tmp_path / "vec" / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    assert lines[:-1] == v.vocabulary[2:]
    config = json.loads((tmp_path / "vec" / "vectorizer.json").read_text())
    assert config["ngrams"] == [1, 2] and config["vocab_size"] == v.vocab_size
    w = TextVectorizer.load(tmp_path / "vec")
    assert w.vocabulary == v.vocabulary and w.get_config() == v.get_config()
    np.testing.assert_array_equal(w(texts), v(texts))


def test_load_errors(tmp_path):
    with pytest.raises(LstmkitError, match="missing"):
        TextVectorizer.load(tmp_path)
    v = TextVectorizer()
    v.adapt(["a b c"])
    v.save(tmp_path)
    (tmp_path / "vocabulary.txt").write_text("a\n")
    with pytest.raises(LstmkitError, match="truncated"):
        TextVectorizer.load(tmp_path)


def test_bad_arguments_and_unadapted_use():
    with pytest.raises(LstmkitError):
        TextVectorizer(max_tokens=2)
    with pytest.raises(LstmkitError):
        TextVectorizer(standardize="upper")
    with pytest.raises(LstmkitError):
        TextVectorizer(split="comma")
    with pytest.raises(LstmkitError):
        TextVectorizer(ngrams=0)
    with pytest.raises(LstmkitError, match="adapt"):
        TextVectorizer()(["a"])
    v = TextVectorizer()
    v.adapt(["a"])
    with pytest.raises(LstmkitError, match="one string"):
        v("a b")


def test_pad_sequences():
    docs = [np.array([1, 2, 3], np.int32), np.array([], np.int32), np.array([4], np.int32)]
    assert pad_sequences(docs, 2).tolist() == [[1, 2], [0, 0], [4, 0]]
    assert pad_sequences(docs, 4).tolist() == [[1, 2, 3, 0], [0, 0, 0, 0], [4, 0, 0, 0]]
    assert pad_sequences([], 3).shape == (0, 3)


def test_joined_and_per_text_encoding_agree():
    texts = [t.replace("\x00", "") for t in random_texts(300, seed=3)]
    v = TextVectorizer()
    v.adapt(texts)
    longest = max(len(d) for d in v.encode_ragged(texts))
    capped = TextVectorizer(output_sequence_length=longest)  # the per-text path
    capped.set_vocabulary(v.vocabulary)
    np.testing.assert_array_equal(v(texts), capped(texts))
