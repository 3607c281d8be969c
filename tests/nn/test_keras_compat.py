"""lstmkit's TextVectorizer against Keras's TextVectorization: same vocabulary, same ids.

Two layers of checks:
- always (when the IMDB archive is present): digests of Keras's vocabulary and ids on 3,125 IMDB
  reviews, committed in fixtures/keras_imdb_digests.json by fixtures/make_keras_digests.py;
- when TensorFlow is importable: live comparisons on IMDB and on hand-made edge cases.
"""

import functools
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from lstmkit.data.text import TextVectorizer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
sys.path.insert(0, str(FIXTURES))
from make_keras_digests import CONFIGS, digests, subset_texts  # noqa: E402

EDGE_TEXTS = [
    "École ÉCOLE straße — wait… don't",
    "U.S.A. e-mail [UNK] [unk] UNK",
    "a\xa0b c\x1cd e\tf\ng\rh\vi\fj k\u2003l",
    "Good.<br /><br />Bad!!! 10/10 :-)",
    "日本語 テキスト, 中文。 emoji 😀😀 ok",
    "  leading and trailing   ",
    "",
    "tie tie zeta alpha beta ZETA",
    "under_score back\\slash quote\"s 'single' {braces} [brackets] (parens) <angle> ~tilde` ^caret| at@ hash# dollar$ percent% amp& star* plus+ eq= semi; colon:",
]


@functools.lru_cache(maxsize=1)
def _subset(archive):
    return subset_texts(archive)


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    pytest.importorskip("tensorflow")
    import keras

    return keras


@pytest.mark.parametrize(
    "entry",
    json.loads((FIXTURES / "keras_imdb_digests.json").read_text())["entries"],
    ids=lambda e: str(e["config"]) or "default",
)
def test_imdb_matches_committed_keras_digests(imdb_labeled, entry):
    texts = _subset(imdb_labeled)
    v = TextVectorizer(**entry["config"])
    v.adapt(texts)
    assert digests(v.vocabulary, v(texts)) == {
        k: entry[k] for k in ("vocab_size", "vocab_sha256", "ids_shape", "ids_sha256")
    }


@pytest.mark.parametrize("config", CONFIGS[:3], ids=str)
def test_imdb_live_against_keras(imdb_labeled, config):
    keras = _keras()
    texts = _subset(imdb_labeled)
    layer = keras.layers.TextVectorization(**config)
    layer.adapt(texts)
    v = TextVectorizer(**config)
    v.adapt(texts)
    assert v.vocabulary == [str(t) for t in layer.get_vocabulary()]
    np.testing.assert_array_equal(v(texts), np.asarray(layer(texts)))


@pytest.mark.parametrize("config", [
    {},
    {"standardize": "lower"},
    {"standardize": "strip_punctuation"},
    {"standardize": None},
    {"split": "character"},
    {"ngrams": 3},
    {"ngrams": (2,), "max_tokens": 20},
    {"max_tokens": 7, "output_sequence_length": 5},
])  # fmt: skip
def test_edge_cases_live_against_keras(config):
    keras = _keras()
    layer = keras.layers.TextVectorization(**config)
    layer.adapt(EDGE_TEXTS)
    v = TextVectorizer(**config)
    v.adapt(EDGE_TEXTS)
    assert v.vocabulary == [str(t) for t in layer.get_vocabulary()]
    queries = EDGE_TEXTS + ["unseen words here", "TIE"]
    np.testing.assert_array_equal(v(queries), np.asarray(layer(queries)))
