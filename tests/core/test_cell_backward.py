"""One LSTM step's hand-written backward against jax.grad and centred finite differences (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmkit.core.cell import lstm_cell, lstm_cell_backward, lstm_cell_backward_autodiff

E, H = 3, 4


def problem(seed, batch):
    """Random weights and inputs; the loss sum(w_h * h) + sum(w_c * c) makes dh = w_h, dc = w_c."""
    rng = np.random.default_rng(seed)
    lead = (batch,) if batch else ()
    params = {
        "W_x": jnp.asarray(rng.normal(size=(E, 4 * H))),
        "W_h": jnp.asarray(rng.normal(size=(H, 4 * H))),
        "b": jnp.asarray(rng.normal(size=4 * H)),
    }
    x, h_prev, c_prev = (jnp.asarray(rng.normal(size=lead + (n,))) for n in (E, H, H))
    dh, dc = (jnp.asarray(rng.normal(size=lead + (H,))) for _ in range(2))
    return params, x, h_prev, c_prev, dh, dc


def loss(params, x, h_prev, c_prev, dh, dc):
    h, c, _ = lstm_cell(params, x, h_prev, c_prev)
    return jnp.sum(dh * h) + jnp.sum(dc * c)


def by_hand(params, x, h_prev, c_prev, dh, dc):
    h, c, gates = lstm_cell(params, x, h_prev, c_prev)
    return lstm_cell_backward(params, x, h_prev, c_prev, c, gates, dh, dc)


@pytest.mark.parametrize("batch", [None, 5])
def test_backward_equals_jax_grad(batch, x64):
    params, x, h_prev, c_prev, dh, dc = problem(0, batch)
    grads = by_hand(params, x, h_prev, c_prev, dh, dc)
    dp, dx, dh_prev, dc_prev = jax.grad(loss, argnums=(0, 1, 2, 3))(params, x, h_prev, c_prev, dh, dc)
    assert grads.dx.shape == x.shape and grads.dW_x.shape == (E, 4 * H)
    for mine, want in [
        (grads.dW_x, dp["W_x"]),
        (grads.dW_h, dp["W_h"]),
        (grads.db, dp["b"]),
        (grads.dx, dx),
        (grads.dh_prev, dh_prev),
        (grads.dc_prev, dc_prev),
    ]:
        np.testing.assert_allclose(mine, want, rtol=1e-12, atol=1e-13)


def test_intermediate_derivatives_equal_jax_grad_of_the_forward_pieces(x64):
    # The loss as a function of the gates, of c and of the pre-activations, written out here.
    params, x, h_prev, c_prev, dh, dc = problem(1, None)
    grads = by_hand(params, x, h_prev, c_prev, dh, dc)
    z = x @ params["W_x"] + h_prev @ params["W_h"] + params["b"]
    i, f, g, o = (
        jax.nn.sigmoid(z[:H]),
        jax.nn.sigmoid(z[H : 2 * H]),
        jnp.tanh(z[2 * H : 3 * H]),
        jax.nn.sigmoid(z[3 * H :]),
    )

    def from_gates(i, f, g, o):
        c = f * c_prev + i * g
        return jnp.sum(dh * o * jnp.tanh(c)) + jnp.sum(dc * c)

    def from_z(z):
        s = jax.nn.sigmoid
        return from_gates(s(z[:H]), s(z[H : 2 * H]), jnp.tanh(z[2 * H : 3 * H]), s(z[3 * H :]))

    c = f * c_prev + i * g
    d_gates = jax.grad(from_gates, argnums=(0, 1, 2, 3))(i, f, g, o)
    dc_tot = jax.grad(lambda c: jnp.sum(dh * o * jnp.tanh(c)) + jnp.sum(dc * c))(c)
    dz = jax.grad(from_z)(z)
    for mine, want in zip((grads.di, grads.df, grads.dg, grads.do), d_gates):
        np.testing.assert_allclose(mine, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grads.dc_tot, dc_tot, rtol=1e-12)
    np.testing.assert_allclose(grads.dz, dz, rtol=1e-12, atol=1e-14)
    for k, part in enumerate((grads.dz_i, grads.dz_f, grads.dz_g, grads.dz_o)):
        np.testing.assert_allclose(part, dz[k * H : (k + 1) * H], rtol=1e-12, atol=1e-14)
    # The pre-activation derivatives are the activation's derivative written from its output.
    np.testing.assert_allclose(grads.dz_i, grads.di * i * (1 - i), rtol=1e-12)
    np.testing.assert_allclose(grads.dz_g, grads.dg * (1 - g * g), rtol=1e-12)


@pytest.mark.parametrize("batch", [None, 2])
def test_backward_equals_centred_finite_differences(batch, x64):
    params, x, h_prev, c_prev, dh, dc = problem(2, batch)
    grads = by_hand(params, x, h_prev, c_prev, dh, dc)
    inputs = {**params, "x": x, "h_prev": h_prev, "c_prev": c_prev}
    mine = {
        "W_x": grads.dW_x,
        "W_h": grads.dW_h,
        "b": grads.db,
        "x": grads.dx,
        "h_prev": grads.dh_prev,
        "c_prev": grads.dc_prev,
    }
    f = jax.jit(lambda a: loss({k: a[k] for k in ("W_x", "W_h", "b")}, a["x"], a["h_prev"], a["c_prev"], dh, dc))
    eps = 1e-6
    for name, value in inputs.items():
        value = np.asarray(value)
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            step = np.zeros_like(value)
            step[idx] = eps
            plus = float(f({**inputs, name: jnp.asarray(value + step)}))
            minus = float(f({**inputs, name: jnp.asarray(value - step)}))
            numeric[idx] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(mine[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_autodiff_reference_matches_by_hand(x64):
    params, x, h_prev, c_prev, dh, dc = problem(3, 4)
    hand = by_hand(params, x, h_prev, c_prev, dh, dc)
    auto = lstm_cell_backward_autodiff(params, x, h_prev, c_prev, dh, dc)
    for name in hand._fields:
        np.testing.assert_allclose(getattr(hand, name), getattr(auto, name), rtol=1e-12, atol=1e-14, err_msg=name)


def test_saturated_gates_pass_no_gradient_to_their_preactivation(x64):
    # The seed's neuron (h_prev = 100): f, i, g are exactly 1 in float64, so dz_i = dz_f = dz_g = 0.
    params = {
        "W_x": jnp.array([[0.7, 0.8, 0.9, 0.5]]),
        "W_h": jnp.array([[0.6, 0.5, 0.4, -0.02]]),
        "b": jnp.array([0.1, 0.2, 0.05, 0.0]),
    }
    grads = by_hand(params, jnp.array([0.0]), jnp.array([100.0]), jnp.array([0.3]), jnp.array([1.0]), jnp.array([0.0]))
    assert float(grads.dz_i[0]) == float(grads.dz_f[0]) == float(grads.dz_g[0]) == 0.0
    assert float(grads.dz_o[0]) != 0.0
    assert float(grads.dc_prev[0]) == pytest.approx(float(grads.dc_tot[0]))  # f = 1 passes dc on whole
