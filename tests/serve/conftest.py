"""A tiny model trained here on synthetic reviews, and `lstmkit serve` as a real process on 127.0.0.1."""

import pytest

from helpers import Server, synthetic_reviews
from lstmkit.data.text import TextVectorizer
from lstmkit.nn.layers import LSTM, Bidirectional, Dense, Embedding
from lstmkit.nn.model import Sequential


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A BiLSTM(8) that learns the synthetic reviews in two epochs (a few seconds), saved."""
    texts, labels = synthetic_reviews(400, seed=0)
    model = Sequential(
        [
            TextVectorizer(max_tokens=40, output_sequence_length=16),
            Embedding(40, 8, mask_zero=True),
            Bidirectional(LSTM(8)),
            Dense(1, "sigmoid"),
        ],
        class_names=["neg", "pos"],
    )
    model.vectorizer.adapt(texts)
    model.compile(learning_rate=1e-2)
    model.fit(texts, labels, epochs=2, batch_size=32, verbose=False)
    out = tmp_path_factory.mktemp("served") / "model"
    model.save(out)
    return out


@pytest.fixture(scope="session")
def start_server():
    """start_server(model_dir, *flags, env={...}) -> a running `Server`; every one still running is stopped at the end."""
    started = []

    def start(model_dir, *flags, env=None):
        started.append(Server(model_dir, *flags, env=env))
        return started[-1]

    yield start
    for server in started:
        if server.process.returncode is None:
            server.stop()
