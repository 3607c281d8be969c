"""The stable activations and one LSTM step: limits, the seed's walk-through, batching."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmkit.core.cell import GATE_NAMES, lstm_cell, sigmoid, tanh

EXTREMES = [-1e4, -1e3, -100.0, -89.0, 89.0, 100.0, 1e3, 1e4]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_activations_finite_and_exact_at_extremes(dtype, x64):
    z = jnp.asarray(EXTREMES, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any overflow warning fails the test
        s = np.asarray(sigmoid(z))
        t = np.asarray(tanh(z))
    assert s.dtype == np.dtype(dtype) and t.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(t))
    # Exact limits, not merely close: the cell multiplies by these.
    assert sigmoid(jnp.asarray(1e4, dtype)) == 1.0
    assert sigmoid(jnp.asarray(-1e4, dtype)) == 0.0
    assert tanh(jnp.asarray(1e4, dtype)) == 1.0
    assert tanh(jnp.asarray(-1e4, dtype)) == -1.0
    assert tanh(jnp.asarray(0.0, dtype)) == 0.0
    assert sigmoid(jnp.asarray(0.0, dtype)) == 0.5


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_activation_gradients_finite_at_extremes(dtype, x64):
    z = jnp.asarray(EXTREMES, dtype=dtype)
    ds = jax.vmap(jax.grad(sigmoid))(z)
    dt = jax.vmap(jax.grad(tanh))(z)
    assert np.all(np.isfinite(ds)) and np.all(np.isfinite(dt))


@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-6), ("float64", 1e-14)])
def test_activations_match_jax_elsewhere(dtype, rtol, x64):
    z = jnp.asarray(
        np.concatenate([np.linspace(-30, 30, 2001), np.logspace(-12, 1, 50), -np.logspace(-12, 1, 50)]), dtype
    )
    np.testing.assert_allclose(sigmoid(z), jax.nn.sigmoid(z), rtol=rtol, atol=0)
    np.testing.assert_allclose(tanh(z), jnp.tanh(z), rtol=rtol, atol=1e-300 if dtype == "float64" else 1e-38)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def seed_params(wxo=0.5, who=-0.02, bo=0.0):
    """The seed's scalar neuron as E = H = 1 weights in gate order i, f, g, o."""
    return {
        "W_x": jnp.array([[0.7, 0.8, 0.9, wxo]]),
        "W_h": jnp.array([[0.6, 0.5, 0.4, who]]),
        "b": jnp.array([0.1, 0.2, 0.05, bo]),
    }


def test_seed_walkthrough():
    # x = 0, h_prev = 100, c_prev = 0.3: every gate but o saturates.
    h, c, gates = lstm_cell(seed_params(), jnp.array([0.0]), jnp.array([100.0]), jnp.array([0.3]))
    assert float(gates.f[0]) == pytest.approx(_sigmoid(50.2), abs=1e-7)  # 0.5 * 100 + 0.2
    assert float(gates.i[0]) == pytest.approx(_sigmoid(60.1), abs=1e-7)  # 0.6 * 100 + 0.1
    assert float(gates.g[0]) == pytest.approx(np.tanh(40.05), abs=1e-7)  # 0.4 * 100 + 0.05
    o = _sigmoid(-2.0)  # -0.02 * 100
    assert float(gates.o[0]) == pytest.approx(o, rel=1e-6)
    # c = f * c_prev + i * g = 1 * 0.3 + 1 * 1 = 1.3 (the seed wrote 2.0).
    assert float(c[0]) == pytest.approx(1.3, rel=1e-6)
    assert float(h[0]) == pytest.approx(o * np.tanh(1.3), rel=1e-6)


def test_cell_formula_on_random_weights():
    rng = np.random.default_rng(0)
    E, H = 3, 4
    p = {"W_x": rng.normal(size=(E, 4 * H)), "W_h": rng.normal(size=(H, 4 * H)), "b": rng.normal(size=4 * H)}
    x, h_prev, c_prev = rng.normal(size=E), rng.normal(size=H), rng.normal(size=H)
    h, c, gates = lstm_cell({k: jnp.asarray(v, jnp.float32) for k, v in p.items()}, x, h_prev, c_prev)
    z = x @ p["W_x"] + h_prev @ p["W_h"] + p["b"]
    z_i, z_f, z_g, z_o = z[:H], z[H : 2 * H], z[2 * H : 3 * H], z[3 * H :]
    i, f, g, o = _sigmoid(z_i), _sigmoid(z_f), np.tanh(z_g), _sigmoid(z_o)
    for name, want in zip(GATE_NAMES, (i, f, g, o)):
        np.testing.assert_allclose(getattr(gates, name), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c, f * c_prev + i * g, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, o * np.tanh(f * c_prev + i * g), rtol=1e-5, atol=1e-6)


def test_batched_cell_equals_per_row():
    k = jax.random.split(jax.random.key(1), 6)
    B, E, H = 5, 3, 4
    p = {
        "W_x": jax.random.normal(k[0], (E, 4 * H)),
        "W_h": jax.random.normal(k[1], (H, 4 * H)),
        "b": jax.random.normal(k[2], (4 * H,)),
    }
    x, h_prev, c_prev = (
        jax.random.normal(k[3], (B, E)),
        jax.random.normal(k[4], (B, H)),
        jax.random.normal(k[5], (B, H)),
    )
    h, c, gates = lstm_cell(p, x, h_prev, c_prev)
    assert h.shape == c.shape == gates.i.shape == (B, H)
    for r in range(B):
        h_r, c_r, gates_r = lstm_cell(p, x[r], h_prev[r], c_prev[r])
        np.testing.assert_allclose(h[r], h_r, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(c[r], c_r, rtol=1e-6, atol=1e-6)
        for name in GATE_NAMES:
            np.testing.assert_allclose(getattr(gates, name)[r], getattr(gates_r, name), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("z", [0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 3.0, -3.0])
def test_activation_derivatives_everywhere_including_zero(z, x64):
    # sigmoid' = s (1 - s), tanh' = 1 - tanh^2, from the textbook forms (numpy), at 0 too:
    # a sign(z) factor once made jax.grad(tanh)(0.0) 0.
    s, t = 1.0 / (1.0 + np.exp(-z)), np.tanh(z)
    assert float(jax.grad(sigmoid)(jnp.float64(z))) == pytest.approx(s * (1 - s), rel=1e-14)
    assert float(jax.grad(tanh)(jnp.float64(z))) == pytest.approx(1 - t * t, rel=1e-14)
    assert float(tanh(jnp.float64(z))) == pytest.approx(t, rel=1e-15, abs=1e-300)
