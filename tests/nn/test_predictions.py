"""`lstmkit.load_model(path).predict(texts)`: Keras's array, which also gives labels and every
class's probability; the references are the plain arrays, read by hand."""

import pickle

import numpy as np
import pytest

import lstmkit
from lstmkit.data.text import TextVectorizer
from lstmkit.nn.layers import LSTM, Dense, Embedding, GlobalMaxPool
from lstmkit.nn.predictions import Predictions

TEXTS = ["the movie was good", "a bad plot", "", "great actor and a dull scene", "zzz unknown"]


def saved_model(tmp_path, units, activation, class_names):
    model = lstmkit.Sequential(
        [
            TextVectorizer(max_tokens=20, output_sequence_length=12),
            Embedding(20, 8, mask_zero=True),
            LSTM(6, return_sequences=True),
            GlobalMaxPool(),
            Dense(units, activation),
        ],
        class_names=class_names,
    )
    model.vectorizer.adapt(TEXTS)
    model.build(seed=3)
    model.save(tmp_path / "m")
    return tmp_path / "m"


def test_one_line_gives_labels_and_probabilities_of_a_binary_model(tmp_path):
    path = saved_model(tmp_path, 1, "sigmoid", ["neg", "pos"])
    p = lstmkit.load_model(path).predict(TEXTS)
    plain = np.asarray(p).view(np.ndarray)
    assert plain.shape == (5, 1)  # Keras's form, unchanged
    assert p.labels == ["pos" if q >= 0.5 else "neg" for q in plain[:, 0]]
    np.testing.assert_array_equal(p.probabilities, np.stack([1 - plain[:, 0], plain[:, 0]], axis=1))
    assert p.class_names == ["neg", "pos"]
    assert plain.min() > 0.0 and plain.max() < 1.0


def test_a_multiclass_models_labels_are_the_likeliest_class(tmp_path):
    names = ["sad", "calm", "glad"]
    p = lstmkit.load_model(saved_model(tmp_path, 3, "softmax", names)).predict(TEXTS)
    plain = np.asarray(p).view(np.ndarray)
    assert plain.shape == (5, 3)
    np.testing.assert_allclose(plain.sum(-1), 1.0, atol=1e-6)
    assert p.labels == [names[k] for k in plain.argmax(-1)]
    np.testing.assert_array_equal(p.probabilities, plain)


def test_it_behaves_as_the_plain_array_and_rows_keep_their_labels():
    p = Predictions(np.array([[0.2], [0.7], [0.5]], np.float32), ["no", "yes"])
    assert p.labels == ["no", "yes", "yes"]  # p >= 0.5 is the second class, as `lstmkit predict` says
    assert type(p > 0.5) is np.ndarray and type(1 - p) is np.ndarray  # not probabilities any more
    assert (p[:, 0] > 0.5).tolist() == [False, True, False]
    assert p[1:].labels == ["yes", "yes"]
    again = pickle.loads(pickle.dumps(p))
    assert again.labels == p.labels and again.class_names == ["no", "yes"]
    assert Predictions(np.array([[0.1, 0.9]])).labels == [1]  # a model without names: the class indices
    with pytest.raises(ValueError, match="slice of shape"):
        p[0].labels  # noqa: B018
