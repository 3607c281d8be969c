"""Builders shared by the tests: synthetic reviews, a small classifier, tiny CLI sizes, random
LSTM problems, the LSTM as a hand loop over the cell, a scale-aware relative error, and
`lstmkit serve` as a real process on 127.0.0.1.

Shape legend: B batch, T time, E input features, V table rows, H hidden units, D directions.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from lstmkit import init_lstm, lstm_cell
from lstmkit.data.text import TextVectorizer
from lstmkit.nn.layers import LSTM, Bidirectional, Dense, Embedding
from lstmkit.nn.model import Sequential

# Flags that make `lstmkit train` small enough for a test: a few seconds an epoch.
TINY = [
    "--max-tokens",
    "40",
    "--sequence-length",
    "16",
    "--embedding-dim",
    "8",
    "--lstm-units",
    "8",
    "--dense-units",
    "8",
    "--bigram-buckets",
    "256",
    "--batch-size",
    "32",
    "--validation",
    "0.2",
    "--learning-rate",
    "0.01",
    "--members",  # one model (the default preset's two double the time; the tests that want two say so)
    "1",
    "--quiet",
]


POS = ["good", "great", "superb", "fine", "lovely"]
NEG = ["bad", "awful", "poor", "boring", "dull"]
FILLER = ["the", "movie", "was", "a", "plot", "and", "it", "actor", "scene", "really"]


def synthetic_reviews(n, seed):
    """Reviews whose label is which sentiment words outnumber the other's; filler elsewhere."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        y = int(rng.integers(2))
        words = list(rng.choice(FILLER, rng.integers(3, 14)))
        strong, weak = (POS, NEG) if y else (NEG, POS)
        for _ in range(rng.integers(2, 4)):
            words.insert(rng.integers(len(words) + 1), rng.choice(strong))
        if rng.random() < 0.5:
            words.insert(rng.integers(len(words) + 1), rng.choice(weak))
        texts.append(" ".join(words))
        labels.append(y)
    return texts, np.array(labels)


def small_model(pooling=None, vocab=32, length=24, inference_length=None):
    v = TextVectorizer(max_tokens=vocab, output_sequence_length=length)
    layers = [v, Embedding(vocab, 16, mask_zero=True)]
    if pooling:
        layers += [Bidirectional(LSTM(16, return_sequences=True)), pooling]
    else:
        layers += [Bidirectional(LSTM(16))]
    layers += [Dense(16, "relu"), Dense(1, "sigmoid")]
    return Sequential(layers, inference_length=inference_length)


def saved_model(directory, status="complete"):
    """A model directory as `lstmkit train` leaves it, without training (built weights)."""
    from lstmkit.io import checkpoint

    texts, _ = synthetic_reviews(50, seed=1)
    model = small_model()
    model.vectorizer.adapt(texts)
    model.build(seed=0)
    model.class_names = ["negative", "positive"]
    checkpoint.save_model(model, directory, status=status)
    return directory


def resign_config(directory, edit):
    """Rewrite a model directory's config.json through `edit`, with its own checksum recomputed
    as a consistent writer would, so that the check after the checksum is what refuses it."""
    import hashlib
    import json

    path = directory / "config.json"
    config = edit(json.loads(path.read_text()))
    if isinstance(config, dict) and "config_sha256" in config:
        body = {k: v for k, v in config.items() if k != "config_sha256"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        config["config_sha256"] = hashlib.sha256(canonical.encode()).hexdigest()
    path.write_text(json.dumps(config))


def random_lstm_problem(seed, B, T, E, H, reverse, lengths, V=None):
    """Random weights, inputs, initial states, mask and loss weights for D = len(reverse) directions.

    float64 when x64 is on, else float32. lengths: None (no mask), "random" (row 0 full and, for
    B > 2, the last row empty), "holes" (padding inside rows too), or one length per row. With V,
    x holds (B, T) token ids below V instead of (B, T, E) features. The recurrent weights are
    doubled so the gates leave their linear range. The loss weights (w_out, w_h, w_c) make a loss
    that uses every output: all steps' h and each direction's final h and c.
    """
    rng = np.random.default_rng(seed)
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    keys = jax.random.split(jax.random.key(seed), len(reverse))
    params = [init_lstm(k, E, H, scheme="torch", dtype=dtype) for k in keys]
    params = [{**p, "W_h": 2.0 * p["W_h"]} for p in params]
    x = jnp.asarray(rng.integers(0, V, (B, T)), jnp.int32) if V else jnp.asarray(rng.normal(size=(B, T, E)), dtype)
    h0 = [jnp.asarray(rng.normal(size=(B, H)), dtype) for _ in reverse]
    c0 = [jnp.asarray(rng.normal(size=(B, H)), dtype) for _ in reverse]
    if lengths is None:
        mask = None
    elif lengths == "holes":
        mask = jnp.asarray(rng.random((B, T)) < 0.8)
    else:
        if lengths == "random":
            lengths = rng.integers(0, T + 1, size=B)
            lengths[0] = T
            if B > 2:
                lengths[-1] = 0
        mask = jnp.asarray(np.arange(T)[None, :] < np.asarray(lengths)[:, None])
    w_out = [jnp.asarray(rng.normal(size=(B, T, H)), dtype) for _ in reverse]
    w_h = [jnp.asarray(rng.normal(size=(B, H)), dtype) for _ in reverse]
    w_c = [jnp.asarray(rng.normal(size=(B, H)), dtype) for _ in reverse]
    return params, x, h0, c0, mask, (w_out, w_h, w_c)


def right_padded_mask(lengths, T):
    """(B, T) bool mask, True on the first lengths[b] steps of row b."""
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def hand_loop(params, x, mask, h0=None, c0=None, reverse=False):
    """The layer as a Python loop over `lstm_cell`: the definition the scan must meet.

    A masked step keeps h and c and outputs zeros; reverse walks t = T-1 .. 0, so with a
    right-padded mask it sees each row's real tokens last to first. mask None: every step is real.
    """
    x = np.asarray(x)
    B_, T_, _ = x.shape
    mask = np.ones((B_, T_), bool) if mask is None else np.asarray(mask)
    H_ = params["W_h"].shape[0]
    h = np.zeros((B_, H_), np.float32) if h0 is None else np.asarray(h0)
    c = np.zeros((B_, H_), np.float32) if c0 is None else np.asarray(c0)
    hs = np.zeros((B_, T_, H_), np.float32)
    for t in reversed(range(T_)) if reverse else range(T_):
        h_new, c_new, _ = lstm_cell(params, x[:, t], h, c)
        m = mask[:, t, None]
        h = np.where(m, h_new, h)
        c = np.where(m, c_new, c)
        hs[:, t] = np.where(m, h, 0.0)
    return hs, h, c


def rel_err(a, b):
    """max |a - b| / max |b|: relative to the gradient's scale, so tiny entries don't blow it up."""
    a, b = np.asarray(a), np.asarray(b)
    scale = np.max(np.abs(b))
    return float(np.max(np.abs(a - b)) / scale) if scale > 0 else float(np.max(np.abs(a)))


def textbook_last_output(lstm, rnn, xs):
    """(LSTM, RNN) sum of the last h over xs (T, E) from zero states, written with jax.nn.sigmoid and
    jnp.tanh (not lstmkit's cell), gate order i, f, g, o: the reference for the sequence gradients."""
    H = lstm["W_h"].shape[0]
    zeros = jnp.zeros(H, xs.dtype)

    def lstm_step(carry, x):
        h, c = carry
        z = x @ lstm["W_x"] + h @ lstm["W_h"] + lstm["b"]
        i, f, o = (jax.nn.sigmoid(z[k * H : (k + 1) * H]) for k in (0, 1, 3))
        c = f * c + i * jnp.tanh(z[2 * H : 3 * H])
        return (o * jnp.tanh(c), c), None

    def rnn_step(h, x):
        return jnp.tanh(x @ rnn["W_x"] + h @ rnn["W_h"] + rnn["b"]), None

    (h_lstm, _), _ = jax.lax.scan(lstm_step, (zeros, zeros), xs)
    h_rnn, _ = jax.lax.scan(rnn_step, jnp.zeros(rnn["W_h"].shape[0], xs.dtype), xs)
    return jnp.sum(h_lstm), jnp.sum(h_rnn)


def textbook_input_gradients(lstm, rnn, xs):
    """(LSTM, RNN) d(last output)/dx_t (T, E) by jax.grad of `textbook_last_output`."""
    lstm_dx = jax.jit(jax.grad(lambda xs: textbook_last_output(lstm, rnn, xs)[0]))(xs)
    rnn_dx = jax.jit(jax.grad(lambda xs: textbook_last_output(lstm, rnn, xs)[1]))(xs)
    return lstm_dx, rnn_dx


# Headless Chromium for the page tests (explain's page, the server's page): where it is, and flags
# that work as root in a container, with no network of its own and console messages on stderr.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


SERVE_READY = re.compile(r"lstmkit serve: .* on (http://127\.0\.0\.1:\d+) ")


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
        match = SERVE_READY.search(line)
        if not match:
            self.process.kill()
            self.process.wait()
            self.log.seek(0)
            raise AssertionError(f"the server did not start: {line!r} {self.log.read()[-2000:]}")
        self.url = match.group(1)

    def client(self, **kwargs):
        import httpx  # the serve extra's client: only the tests that start a server need it

        return httpx.Client(base_url=self.url, timeout=60, **kwargs)

    def async_client(self, **kwargs):
        import httpx

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
