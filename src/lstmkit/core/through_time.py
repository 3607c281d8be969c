"""A short sequence through a small LSTM and a plain tanh RNN, forward and backward by hand:
how much of the last output's gradient reaches each earlier input.

Shape legend: T time, E input features, H hidden units. States start at zero; the "last output"
is y = sum(h_{T-1}) (h_{T-1} itself for one unit), so the backward starts from dh = 1, dc = 0.

The LSTM's step and its backward are `lstmkit.core.cell`'s. The RNN of the same size is

    h_t = tanh(x_t W_x + h_{t-1} W_h + b)          W_x (E, H), W_h (H, H), b (H,)

and its backward, per step from the last:  dz = dh * (1 - h_t^2),  dx_t = dz W_x^T,
dh_{t-1} = dz W_h^T. So dy/dx_t is a product of one factor W_h (1 - h^2) per later step: below 1
(vanishing) unless W_h is large, and then tanh saturates and 1 - h^2 is near 0. The LSTM's cell
path multiplies by the forget gate f per step instead (dc_prev = dc_tot * f), which stays near 1
while the gate is open, whatever the size of c.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from lstmkit.core.cell import Gates, lstm_cell, lstm_cell_backward, tanh
from lstmkit.core.init import glorot_uniform, init_lstm, orthogonal

# The default sequence: 25 draws of a standard normal (numpy's default_rng(0)), rounded to 0.1.
DEFAULT_SEQUENCE = (0.1, -0.1, 0.6, 0.1, -0.5, 0.4, 1.3, 0.9, -0.7, -1.3, -0.6, 0.0, -2.3, -0.2, -1.2, -0.7, -0.5, -0.3, 0.4, 1.0, -0.1, 1.4, -0.7, 0.4, 0.9)  # fmt: skip

# The one-unit LSTM: the seed's neuron (`lstmkit cell`'s defaults), with the forget bias raised
# from 0.2 to 2.5 so that the forget gate keeps about 90% of the cell per step.
LSTM_WEIGHTS = {
    "wxi": 0.7, "whi": 0.6, "bi": 0.1,
    "wxf": 0.8, "whf": 0.5, "bf": 2.5,
    "wxc": 0.9, "whc": 0.4, "bc": 0.05,
    "wxo": 0.5, "who": -0.02, "bo": 0.0,
}  # fmt: skip

# The one-unit RNN: W_h = 1, its best case (smaller shrinks the gradient faster; larger saturates tanh).
RNN_WEIGHTS = {"rnn_wx": 1.0, "rnn_wh": 1.0, "rnn_b": 0.0}

FORGET_BIAS = 2.5  # also for --hidden N > 1, on top of Keras's initialisation


def scalar_lstm_params(w):
    """One-unit LSTM parameters (E = H = 1) from scalar weights named as `lstmkit cell`'s flags."""
    return {
        "W_x": jnp.array([[w["wxi"], w["wxf"], w["wxc"], w["wxo"]]]),
        "W_h": jnp.array([[w["whi"], w["whf"], w["whc"], w["who"]]]),
        "b": jnp.array([w["bi"], w["bf"], w["bc"], w["bo"]]),
    }


def scalar_rnn_params(w):
    """One-unit RNN parameters from {"rnn_wx", "rnn_wh", "rnn_b"}."""
    return {"W_x": jnp.array([[w["rnn_wx"]]]), "W_h": jnp.array([[w["rnn_wh"]]]), "b": jnp.array([w["rnn_b"]])}


def random_params(key, hidden, input_size=1):
    """(LSTM, RNN) parameters for H units, as Keras initialises them, the LSTM's forget bias at 2.5.

    LSTM: `init_lstm(scheme="keras")` (glorot W_x, orthogonal W_h). RNN: glorot W_x, orthogonal
    W_h, zero b, as `keras.layers.SimpleRNN`.
    """
    k_lstm, k_x, k_h = jax.random.split(key, 3)
    lstm = init_lstm(k_lstm, input_size, hidden, scheme="keras")
    lstm["b"] = lstm["b"].at[hidden : 2 * hidden].set(FORGET_BIAS)
    rnn = {
        "W_x": glorot_uniform(k_x, (input_size, hidden)),
        "W_h": orthogonal(k_h, (hidden, hidden)),
        "b": jnp.zeros(hidden),
    }
    return lstm, rnn


class LSTMSteps(NamedTuple):
    """The forward of every step, each (T, H): the states it started from, its gates, its new states."""

    h_prev: jnp.ndarray
    c_prev: jnp.ndarray
    gates: Gates
    c: jnp.ndarray
    h: jnp.ndarray


def lstm_forward(params, xs):
    """Run `lstm_cell` over xs (T, E) from h = c = 0; returns `LSTMSteps`."""
    zeros = jnp.zeros(params["W_h"].shape[0], xs.dtype)

    def step(carry, x):  # one loop iteration: for x in xs
        h_prev, c_prev = carry
        h, c, gates = lstm_cell(params, x, h_prev, c_prev)
        return (h, c), LSTMSteps(h_prev, c_prev, gates, c, h)

    return jax.lax.scan(step, (zeros, zeros), xs)[1]


def lstm_backward(params, xs, steps: LSTMSteps):
    """The backward of y = sum(h_{T-1}), step by step from the last: (dh, dc, grads).

    dh, dc (T, H): the gradients arriving at step t's outputs h_t and c_t (from y at the last
    step, from step t+1 before it). grads: `CellGradients` of every step, stacked on a T axis;
    grads.dx (T, E) is dy/dx_t, how much of the last output's gradient reaches input t.
    """

    def step(carry, saved):  # one loop iteration: for t in reversed(range(T))
        dh, dc = carry
        x, h_prev, c_prev, gates, c = saved
        grads = lstm_cell_backward(params, x, h_prev, c_prev, c, gates, dh, dc)
        return (grads.dh_prev, grads.dc_prev), (dh, dc, grads)  # dh_prev, dc_prev go on to step t-1

    start = (jnp.ones_like(steps.h[-1]), jnp.zeros_like(steps.c[-1]))  # y = sum(h_{T-1})
    saved = (xs, steps.h_prev, steps.c_prev, steps.gates, steps.c)
    _, (dh, dc, grads) = jax.lax.scan(step, start, saved, reverse=True)
    return dh, dc, grads


def rnn_forward(params, xs):
    """h (T, H): a plain tanh RNN over xs (T, E) from h = 0."""

    def step(h_prev, x):
        h = tanh(x @ params["W_x"] + h_prev @ params["W_h"] + params["b"])
        return h, h

    return jax.lax.scan(step, jnp.zeros(params["W_h"].shape[0], xs.dtype), xs)[1]


def rnn_backward(params, xs, hs):
    """The backward of y = sum(h_{T-1}) through the RNN: (dh (T, H) arriving at h_t, dx (T, E))."""

    def step(dh, h):  # for t in reversed(range(T))
        dz = dh * (1 - h * h)  # h_t = tanh(z_t)
        dx = dz @ params["W_x"].T  # z_t = x_t W_x + h_{t-1} W_h + b
        return dz @ params["W_h"].T, (dh, dx)  # dh_{t-1}

    return jax.lax.scan(step, jnp.ones_like(hs[-1]), hs, reverse=True)[1]


def lstm_last_output(params, xs):
    """y = sum(h_{T-1}) of the LSTM, for `jax.grad`: the check of `lstm_backward`'s dx."""
    return jnp.sum(lstm_forward(params, xs).h[-1])


def rnn_last_output(params, xs):
    """y = sum(h_{T-1}) of the RNN, for `jax.grad`: the check of `rnn_backward`'s dx."""
    return jnp.sum(rnn_forward(params, xs)[-1])


def sequence_gradients(lstm, rnn, xs):
    """Everything `lstmkit cell --sequence` shows, in one function to compile once:
    (steps, (dh, dc, grads)) of the LSTM, (h, (dh, dx)) of the RNN, and jax.grad's dy/dx of each."""
    steps = lstm_forward(lstm, xs)
    rnn_h = rnn_forward(rnn, xs)
    checks = (jax.grad(lstm_last_output, argnums=1)(lstm, xs), jax.grad(rnn_last_output, argnums=1)(rnn, xs))
    return (steps, lstm_backward(lstm, xs, steps)), (rnn_h, rnn_backward(rnn, xs, rnn_h)), checks
