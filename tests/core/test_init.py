"""Initialisers: shapes, Keras's orthogonal recurrent kernel and unit forget bias, torch's bounds, keys."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmkit import LstmkitError, init_bidirectional, init_lstm
from lstmkit.core.init import SCHEMES

E, H = 7, 5


@pytest.mark.parametrize("scheme", SCHEMES)
def test_shapes_and_dtype(scheme):
    p = init_lstm(jax.random.key(0), E, H, scheme=scheme)
    assert set(p) == {"W_x", "W_h", "b"}
    assert p["W_x"].shape == (E, 4 * H) and p["W_h"].shape == (H, 4 * H) and p["b"].shape == (4 * H,)
    assert all(a.dtype == jnp.float32 for a in p.values())
    bi = init_bidirectional(jax.random.key(0), E, H, scheme=scheme)
    assert set(bi) == {"forward", "backward"}
    assert not np.allclose(bi["forward"]["W_x"], bi["backward"]["W_x"])  # two independent draws


def test_float64(x64):
    p = init_lstm(jax.random.key(0), E, H, dtype=jnp.float64)
    assert all(a.dtype == jnp.float64 for a in p.values())


@pytest.mark.parametrize("E_, H_", [(7, 5), (3, 1), (40, 16)])
def test_keras_scheme(E_, H_):
    p = init_lstm(jax.random.key(1), E_, H_, scheme="keras")
    # Recurrent kernel (H, 4H) is orthogonal as one matrix: its H rows are orthonormal.
    W_h = np.asarray(p["W_h"], np.float64)
    np.testing.assert_allclose(W_h @ W_h.T, np.eye(H_), atol=1e-5)
    # Kernel glorot_uniform with fan_in = E, fan_out = 4H.
    limit = np.sqrt(6.0 / (E_ + 4 * H_))
    assert np.all(np.abs(p["W_x"]) <= limit)
    assert np.max(np.abs(p["W_x"])) > 0.5 * limit
    # Bias zero except the forget block (second of i, f, g, o), which is 1.
    want = np.zeros(4 * H_)
    want[H_ : 2 * H_] = 1.0
    np.testing.assert_array_equal(p["b"], want)


def test_keras_without_unit_forget_bias():
    p = init_lstm(jax.random.key(1), E, H, scheme="keras", unit_forget_bias=False)
    np.testing.assert_array_equal(p["b"], 0.0)


def test_torch_scheme_bounds():
    Hb = 64
    p = init_lstm(jax.random.key(2), E, Hb, scheme="torch")
    bound = 1.0 / np.sqrt(Hb)
    for name in ("W_x", "W_h"):
        a = np.asarray(p[name])
        assert np.all(np.abs(a) <= bound)
        assert np.max(np.abs(a)) > 0.9 * bound  # spread over the whole range, not a narrower one
        assert abs(a.mean()) < 0.1 * bound
    # The one bias is b_ih + b_hh, two uniform draws: within +-2/sqrt(H).
    b = np.asarray(p["b"])
    assert np.all(np.abs(b) <= 2 * bound)
    assert np.max(np.abs(b)) > bound


@pytest.mark.parametrize("scheme", SCHEMES)
def test_deterministic_by_key(scheme):
    a = init_lstm(jax.random.key(3), E, H, scheme=scheme)
    b = init_lstm(jax.random.key(3), E, H, scheme=scheme)
    c = init_lstm(jax.random.key(4), E, H, scheme=scheme)
    for name in ("W_x", "W_h"):
        np.testing.assert_array_equal(a[name], b[name])
        assert not np.allclose(a[name], c[name])
    # The three tensors come from different sub-keys, not one reused draw.
    assert not np.allclose(a["W_x"][:H, : 4 * H], a["W_h"])


def test_unknown_scheme():
    with pytest.raises(LstmkitError, match="keras, torch"):
        init_lstm(jax.random.key(0), E, H, scheme="xavier")
