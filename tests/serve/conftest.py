"""A tiny model trained here on synthetic reviews, and `lstmkit serve` as a real process on 127.0.0.1."""

import os
import re
import signal
import subprocess
import sys
import tempfile

import httpx
import pytest

from helpers import synthetic_reviews
from lstmkit.data.text import TextVectorizer
from lstmkit.nn.layers import LSTM, Bidirectional, Dense, Embedding
from lstmkit.nn.model import Sequential

READY = re.compile(r"lstmkit serve: .* on (http://127\.0\.0\.1:\d+) ")


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


class Server:
    """`python -m lstmkit.cli serve MODEL_DIR --port 0 ...` in a process of its own; `url` once ready."""

    def __init__(self, model_dir, *flags, env=None):
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115  (a file, not a pipe: a full pipe would stall the server; closed by stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lstmkit.cli", "serve", str(model_dir), "--port", "0", *flags],
            stdout=subprocess.PIPE,
            stderr=self.log,
            env={**os.environ, **(env or {})},
            text=True,
        )
        line = self.process.stdout.readline()  # the one line it prints when ready (or nothing if it died)
        match = READY.search(line)
        if not match:
            self.process.kill()
            self.process.wait()
            self.log.seek(0)
            raise AssertionError(f"the server did not start: {line!r} {self.log.read()[-2000:]}")
        self.url = match.group(1)

    def client(self, **kwargs):
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)

    def async_client(self, **kwargs):
        return httpx.AsyncClient(base_url=self.url, timeout=60, **kwargs)

    def stop(self, timeout=30):
        """SIGTERM, then its exit status (killed, and the test failed, if it does not stop in time)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"the server did not stop within {timeout} s of SIGTERM") from None
        finally:
            self.process.stdout.close()
            self.log.close()


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
