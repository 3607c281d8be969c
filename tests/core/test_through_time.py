"""A sequence's gradients by hand, LSTM and RNN, against jax.grad of the whole sequence (float64),
and the contrast the defaults are chosen to show."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import textbook_input_gradients, textbook_last_output
from lstmkit.core.through_time import (
    DEFAULT_SEQUENCE,
    LSTM_WEIGHTS,
    RNN_WEIGHTS,
    random_params,
    scalar_lstm_params,
    scalar_rnn_params,
    sequence_gradients,
)


def case(name):
    if name == "one unit, defaults":
        return scalar_lstm_params(LSTM_WEIGHTS), scalar_rnn_params(RNN_WEIGHTS), jnp.asarray(DEFAULT_SEQUENCE)[:, None]
    lstm, rnn = random_params(jax.random.key(4), 3)
    to64 = lambda p: jax.tree.map(lambda a: a.astype(jnp.float64), p)
    return to64(lstm), to64(rnn), jnp.asarray(np.random.default_rng(5).normal(size=(12, 1)))


@pytest.mark.parametrize("name", ["one unit, defaults", "three units, random"])
def test_per_step_gradients_equal_jax_grad_of_the_whole_sequence(name, x64):
    lstm, rnn, xs = case(name)
    (steps, (dh, dc, grads)), (rnn_h, (rnn_dh, rnn_dx)), _ = jax.jit(sequence_gradients)(lstm, rnn, xs)
    want_lstm, want_rnn = textbook_input_gradients(lstm, rnn, xs)
    np.testing.assert_allclose(grads.dx, want_lstm, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(rnn_dx, want_rnn, rtol=1e-10, atol=1e-300)
    # The forward is the textbook one, and the weights' gradients summed over the steps are the sequence's.
    want_y = textbook_last_output(lstm, rnn, xs)
    assert float(jnp.sum(steps.h[-1])) == pytest.approx(float(want_y[0]), rel=1e-13)
    assert float(jnp.sum(rnn_h[-1])) == pytest.approx(float(want_y[1]), rel=1e-13)
    dp = jax.grad(lambda p: textbook_last_output(p, rnn, xs)[0])(lstm)
    np.testing.assert_allclose(grads.dW_h.sum(0), dp["W_h"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grads.db.sum(0), dp["b"], rtol=1e-10, atol=1e-14)


def test_backward_starts_at_the_last_output_and_carries_dh_dc(x64):
    lstm, rnn, xs = case("one unit, defaults")
    _, (dh, dc, grads) = jax.jit(sequence_gradients)(lstm, rnn, xs)[0]
    assert dh.shape == dc.shape == (len(xs), 1)
    assert float(dh[-1, 0]) == 1.0 and float(dc[-1, 0]) == 0.0  # y = h_{T-1}
    np.testing.assert_array_equal(dh[:-1], grads.dh_prev[1:])  # what step t+1 sends back reaches step t
    np.testing.assert_array_equal(dc[:-1], grads.dc_prev[1:])


def test_defaults_show_the_vanishing_gradient(x64):
    lstm, rnn, xs = case("one unit, defaults")
    assert 20 <= len(xs) <= 30
    want_lstm, want_rnn = (np.abs(np.asarray(a[:, 0])) for a in textbook_input_gradients(lstm, rnn, xs))
    assert want_lstm[0] > 1e-3  # the first input still reaches the last output through the LSTM
    assert want_lstm[0] > 1e6 * want_rnn[0]  # ... orders of magnitude more than through the RNN
    assert want_rnn[-1] > 0.1  # the RNN is not dead: the last input reaches it well
