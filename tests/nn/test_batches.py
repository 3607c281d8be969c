"""Training batch lengths follow the data: short texts are not padded to a quarter of the model's length."""

import numpy as np

from lstmkit.data.text import TextVectorizer
from lstmkit.nn.batches import training_batches
from lstmkit.nn.layers import LSTM, Dense, Embedding
from lstmkit.nn.model import Sequential


def _model(sequence_length):
    layers = [TextVectorizer(max_tokens=50, output_sequence_length=sequence_length), Embedding(50, 4, mask_zero=True)]
    return Sequential([*layers, LSTM(4), Dense(1, "sigmoid")])


def _texts(low, high, n=200, seed=0):
    rng = np.random.default_rng(seed)
    ids = [rng.integers(2, 50, length).astype(np.int32) for length in rng.integers(low, high + 1, n)]
    return ids, rng.integers(0, 2, n)


def _lengths_and_rows(model, ids, labels):
    batches = list(training_batches(model, ids, labels, 8, seed=3, shuffle=True, bucket=True))
    return [b.ids.shape[1] for b in batches], [b.index.tolist() for b in batches]


def test_short_texts_are_padded_to_lengths_of_their_own_not_of_the_models_length():
    ids, labels = _texts(3, 40)
    lengths, rows = _lengths_and_rows(_model(800), ids, labels)
    assert max(lengths) == 40 and len(set(lengths)) <= 8  # a quarter of 800 was 200
    assert all(t >= max(len(ids[i]) for i in r if i >= 0) for t, r in zip(lengths, rows))  # nothing cut
    # the same rows, order and lengths as with a model whose length fits the data
    assert (lengths, rows) == _lengths_and_rows(_model(40), ids, labels)


def test_texts_longer_than_the_model_are_cut_to_its_length():
    ids, labels = _texts(10, 100)
    lengths, _ = _lengths_and_rows(_model(16), ids, labels)
    assert set(lengths) == {16}  # every text reaches 16 once cut: one shape
