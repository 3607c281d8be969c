"""Memory through time: the prediction's gradient with respect to each token's embedded input
(against centred finite differences, float64, and the kernel's float32 path) and its norm through
the first LSTM layer's cell (against finite differences of a plain NumPy loop over the cell); the
explanation's "memory" entry, its reach, and the --json output."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

from helpers import synthetic_reviews as reviews
from lstmkit.cli import main
from lstmkit.data.text import TextVectorizer
from lstmkit.explain.memory import memory_reach
from lstmkit.explain.report import explain, summary
from lstmkit.explain.trace import cell_gradients, input_gradients
from lstmkit.nn.architecture import Architecture
from lstmkit.nn.layers import LSTM, Bidirectional, Dense, Embedding, bigram_ids
from lstmkit.nn.model import Sequential
from lstmkit.nn.pooling import GlobalMaxPool

P, N = 16, 11  # padded length, tokens read


def _ids(seed, vocab):
    ids = np.zeros(P, np.int32)
    ids[:N] = np.random.default_rng(seed).integers(2, vocab, N)
    return ids


def _architectures():
    """A binary BiLSTM over bigram vectors, and a three-class stack read backwards then forwards."""
    binary = [
        Embedding(20, 5, mask_zero=True, bigram_buckets=31),
        Bidirectional(LSTM(4, return_sequences=True)),
        GlobalMaxPool(),
        Dense(3, "relu"),
        Dense(1, "sigmoid"),
    ]
    three = [
        Embedding(20, 5, mask_zero=True),
        LSTM(4, go_backwards=True, return_sequences=True),
        LSTM(3),
        Dense(3, "softmax"),
    ]
    return {"binary": binary, "three": three}


def _built(name, seed=0):
    arch = Architecture(_architectures()[name])
    params = arch.init_params(jax.random.key(seed))
    # Larger weights than the initialiser's, so the gates leave their linear range and far tokens matter.
    params = jax.tree.map(lambda a: 3.0 * a, params)
    return arch, params


@pytest.mark.parametrize("name", ["binary", "three"])
def test_input_gradient_is_the_directional_derivative(name):
    """(f(x + eps u) - f(x - eps u)) / 2 eps = grad . u, for a random direction u at one token at a
    time, with f the predicted class's logit (the one logit when binary), in float64 (the scans);
    and in float32 on the CPU, where the LSTMs run the fused C++ kernel and its hand-written
    backward, the gradient is the same to float32's precision."""
    arch, params = _built(name)
    ids = _ids(1, 20)
    grad32, _ = input_gradients(arch, params, jnp.asarray(ids))
    assert grad32.dtype == jnp.float32
    jax.config.update("jax_enable_x64", True)
    try:
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        grad, x = (np.asarray(a) for a in input_gradients(arch, params, jnp.asarray(ids)))
        apply = jax.jit(lambda kick: arch.apply(params, ids[None], logits=True, perturb=kick[None])[0])
        logits = np.asarray(apply(jnp.zeros((P, 5))))
        target = 0 if logits.size == 1 else int(np.argmax(logits))
        rng, eps, fd = np.random.default_rng(2), 1e-5, []
        for t in (0, 4, N - 1):
            u = np.zeros((P, 5))
            u[t] = rng.normal(size=5)
            up, down = (float(apply(jnp.asarray(s * eps * u))[target]) for s in (1, -1))
            fd.append(((up - down) / (2 * eps), float(np.sum(grad * u))))
    finally:
        jax.config.update("jax_enable_x64", False)
    assert grad.shape == x.shape == (P, 5) and grad.dtype == np.float64
    for expected, got in fd:
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert np.all(grad[N:] == 0)  # padding is masked: nothing read there
    np.testing.assert_allclose(grad32, grad, atol=1e-5 * np.abs(grad).max())
    # x is the Embedding's output: the word's row plus its pair's bigram row (when it has them).
    expected = np.asarray(params[0]["table"])[ids]
    if "bigram_table" in params[0]:
        expected = expected + np.asarray(params[0]["bigram_table"])[np.asarray(bigram_ids(ids[None], 31))[0]]
    np.testing.assert_allclose(x, expected, atol=1e-12)


def _numpy_lstm(p, xs, reverse, kick):
    """One direction over xs (T, E) from zero states, a plain loop in float64, with kick (T, H)
    added to the cell after reading token t; returns (hs (T, H) in text order, final h)."""
    W_x, W_h, b = (np.asarray(p[k], np.float64) for k in ("W_x", "W_h", "b"))
    H = W_h.shape[0]
    h, c, hs = np.zeros(H), np.zeros(H), np.zeros((len(xs), H))
    for t in reversed(range(len(xs))) if reverse else range(len(xs)):
        z = xs[t] @ W_x + h @ W_h + b
        i, f, o = (1 / (1 + np.exp(-z[k * H : (k + 1) * H])) for k in (0, 1, 3))
        c = f * c + i * np.tanh(z[2 * H : 3 * H]) + kick[t]
        h = o * np.tanh(c)
        hs[t] = h
    return hs, h


def _numpy_models():
    """Two tiny models, each (layers, z(params, tokens, kick (D, T, H)) -> the prediction's logit)."""

    def bidirectional_binary(params, ids, kick):
        xs = np.asarray(params[0]["table"], np.float64)[ids]
        _, h_f = _numpy_lstm(params[1]["forward"], xs, False, kick[0])
        _, h_b = _numpy_lstm(params[1]["backward"], xs, True, kick[1])
        W, b = (np.asarray(params[2][k], np.float64) for k in ("W", "b"))
        return (np.concatenate([h_f, h_b]) @ W + b)[0]

    def backwards_three(params, ids, kick):
        xs = np.asarray(params[0]["table"], np.float64)[ids]
        hs, _ = _numpy_lstm(params[1], xs, True, kick[0])
        W, b = (np.asarray(params[3][k], np.float64) for k in ("W", "b"))
        return hs.max(0) @ W + b

    return {
        "bidirectional": (
            [Embedding(12, 3, mask_zero=True), Bidirectional(LSTM(2)), Dense(1, "sigmoid")],
            bidirectional_binary,
        ),
        "backwards": (
            [
                Embedding(12, 3, mask_zero=True),
                LSTM(2, go_backwards=True, return_sequences=True),
                GlobalMaxPool(),
                Dense(3, "softmax"),
            ],
            backwards_three,
        ),
    }


@pytest.mark.parametrize("name", ["bidirectional", "backwards"])
def test_cell_gradient_norms_match_a_plain_loop(name):
    """||dz/dc_t|| per direction and token equals the norm of centred differences of a NumPy loop
    over the cell with a kick added to c_t, component by component (the definition); 0 on padding."""
    layers, numpy_z = _numpy_models()[name]
    arch = Architecture(layers)
    params = jax.tree.map(lambda a: 3.0 * a, arch.init_params(jax.random.key(5)))
    n, T = 6, 8
    ids = np.zeros(T, np.int32)
    ids[:n] = [3, 7, 2, 11, 5, 9]
    norms, logits = cell_gradients(arch, params, jnp.asarray(ids))
    np.testing.assert_allclose(logits, np.asarray(arch.apply(params, ids[None], logits=True))[0], atol=1e-5)

    D, H = norms.shape[0], 2
    zero = np.zeros((D, n, H))
    z0 = np.atleast_1d(numpy_z(params, ids[:n], zero))
    np.testing.assert_allclose(z0, logits, atol=1e-5)  # the loop is the model
    target = int(np.argmax(z0))
    eps, grad = 1e-6, np.zeros((D, n, H))
    for index in np.ndindex(grad.shape):
        kick = zero.copy()
        kick[index] = eps
        up = np.atleast_1d(numpy_z(params, ids[:n], kick))[target]
        kick[index] = -eps
        grad[index] = (up - np.atleast_1d(numpy_z(params, ids[:n], kick))[target]) / (2 * eps)
    expected = np.linalg.norm(grad, axis=-1)  # (D, n)
    assert expected.min() > 1e-4  # every step matters a little: the comparison is not 0 == 0
    np.testing.assert_allclose(np.asarray(norms)[:, :n], expected, rtol=2e-4, atol=1e-6)
    assert np.all(np.asarray(norms)[:, n:] == 0)


def test_memory_reach_definition():
    assert memory_reach([0.05, 0.2, 0.1, 2.0, 1.0]) == (1, 3)  # 0.2 >= 10% of 2.0; 0.05 is not
    assert memory_reach([3.0, 0.0]) == (0, 0)
    assert memory_reach([]) is None and memory_reach([0.0, 0.0]) is None
    assert memory_reach([0.5, 1.0], threshold=0.6) == (1, 1)


@pytest.fixture(scope="module")
def model():
    texts, _ = reviews(50, seed=1)
    m = Sequential(
        [
            TextVectorizer(max_tokens=30, output_sequence_length=16),
            Embedding(30, 8, mask_zero=True),
            Bidirectional(LSTM(6)),
            Dense(1, "sigmoid"),
        ],
        class_names=["neg", "pos"],
    )
    m.vectorizer.adapt(texts)
    m.build(seed=2)
    return m


def test_the_explanation_carries_the_memory_view(model, tmp_path):
    text = "the plot was dull but the actor was superb and the movie lovely"
    e = explain(model, text)
    mem, n = e["memory"], e["n_used"]
    assert n == 13 and mem["cell_layer"] == 1
    assert [d["name"] for d in mem["cell_gradient_norm"]] == ["forward", "backward"]
    assert len(mem["gradient_norm"]) == len(mem["gradient_x_input"]) == n
    assert all(len(d["values"]) == n for d in mem["cell_gradient_norm"])
    # The numbers are the trace functions' on the model's ids, to 4 significant digits.
    ids = np.zeros(64, np.int32)
    ids[:n] = e["ids"][:n]
    grad, x = input_gradients(model.architecture, model.params, jnp.asarray(ids))
    np.testing.assert_allclose(mem["gradient_norm"], np.linalg.norm(grad, axis=-1)[:n], rtol=1e-3)
    np.testing.assert_allclose(mem["gradient_x_input"], np.sum(np.asarray(grad) * x, -1)[:n], rtol=1e-3, atol=1e-6)
    g = np.asarray(mem["gradient_norm"])
    earliest = next(t for t in range(n) if g[t] >= 0.1 * g.max())
    assert mem["reach"] == {
        "threshold": 0.1,
        "earliest": earliest,
        "word": e["words"][earliest],
        "tokens_back": n - 1 - earliest,
        "peak": int(np.argmax(g)),
    }
    assert "memory: the decision reaches back" in summary(e) and "memory" in e["methods"]
    empty = explain(model, " ... ")["memory"]
    assert empty["reach"] is None and empty["gradient_norm"] == [] and empty["cell_gradient_norm"][1]["values"] == []

    model.save(tmp_path / "m")
    r = CliRunner().invoke(main, ["explain", str(tmp_path / "m"), text, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["memory"] == mem
