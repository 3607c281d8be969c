"""A sequence's gradients by hand, LSTM and RNN, against jax.grad of the whole sequence (float64),
and the contrast the defaults are chosen to show."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmkit.core.through_time import (
    DEFAULT_SEQUENCE,
    LSTM_WEIGHTS,
    RNN_WEIGHTS,
    lstm_backward,
    lstm_forward,
    random_params,
    rnn_backward,
    rnn_forward,
    scalar_lstm_params,
    scalar_rnn_params,
)


def lstm_last_output(params, xs):
    """The LSTM written out here, textbook activations, gate order i, f, g, o: sum of the last h."""
    H = params["W_h"].shape[0]
    h = c = jnp.zeros(H, xs.dtype)
    for x in xs:
        z = x @ params["W_x"] + h @ params["W_h"] + params["b"]
        i, f, o = (jax.nn.sigmoid(z[k * H : (k + 1) * H]) for k in (0, 1, 3))
        g = jnp.tanh(z[2 * H : 3 * H])
        c = f * c + i * g
        h = o * jnp.tanh(c)
    return jnp.sum(h)


def rnn_last_output(params, xs):
    h = jnp.zeros(params["W_h"].shape[0], xs.dtype)
    for x in xs:
        h = jnp.tanh(x @ params["W_x"] + h @ params["W_h"] + params["b"])
    return jnp.sum(h)


def cases():
    xs_1 = jnp.asarray(DEFAULT_SEQUENCE)[:, None]
    lstm_3, rnn_3 = random_params(jax.random.key(4), 3)
    xs_3 = jnp.asarray(np.random.default_rng(5).normal(size=(12, 1)))
    return [
        (scalar_lstm_params(LSTM_WEIGHTS), scalar_rnn_params(RNN_WEIGHTS), xs_1),
        (
            jax.tree.map(lambda a: a.astype(jnp.float64), lstm_3),
            jax.tree.map(lambda a: a.astype(jnp.float64), rnn_3),
            xs_3,
        ),
    ]


@pytest.mark.parametrize("case", [0, 1], ids=["one-unit defaults", "three units, random"])
def test_per_step_gradients_equal_jax_grad_of_the_whole_sequence(case, x64):
    lstm, rnn, xs = cases()[case]
    _, _, grads = lstm_backward(lstm, xs, lstm_forward(lstm, xs))
    np.testing.assert_allclose(grads.dx, jax.grad(lstm_last_output, argnums=1)(lstm, xs), rtol=1e-10, atol=1e-300)
    _, rnn_dx = rnn_backward(rnn, xs, rnn_forward(rnn, xs))
    np.testing.assert_allclose(rnn_dx, jax.grad(rnn_last_output, argnums=1)(rnn, xs), rtol=1e-10, atol=1e-300)
    # The weights' gradients, summed over the steps, are the whole sequence's too.
    want = jax.grad(lstm_last_output)(lstm, xs)
    np.testing.assert_allclose(grads.dW_h.sum(0), want["W_h"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grads.db.sum(0), want["b"], rtol=1e-10, atol=1e-14)


def test_backward_starts_at_the_last_output_and_carries_dh_dc(x64):
    lstm, _, xs = cases()[0]
    dh, dc, grads = lstm_backward(lstm, xs, lstm_forward(lstm, xs))
    assert dh.shape == dc.shape == (len(xs), 1)
    assert float(dh[-1, 0]) == 1.0 and float(dc[-1, 0]) == 0.0  # y = h_{T-1}
    np.testing.assert_array_equal(dh[:-1], grads.dh_prev[1:])  # what step t+1 sends back reaches step t
    np.testing.assert_array_equal(dc[:-1], grads.dc_prev[1:])


def test_defaults_show_the_vanishing_gradient(x64):
    lstm, rnn, xs = cases()[0]
    assert 20 <= len(xs) <= 30
    lstm_dx = np.abs(np.asarray(lstm_backward(lstm, xs, lstm_forward(lstm, xs))[2].dx[:, 0]))
    rnn_dx = np.abs(np.asarray(rnn_backward(rnn, xs, rnn_forward(rnn, xs))[1][:, 0]))
    assert lstm_dx[0] > 1e-3  # the first input still reaches the last output through the LSTM
    assert lstm_dx[0] > 1e6 * rnn_dx[0]  # ... orders of magnitude more than through the RNN
    assert rnn_dx[-1] > 0.1  # the RNN is not dead: the last input reaches it well
