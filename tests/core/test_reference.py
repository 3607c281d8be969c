"""lstmkit against torch.nn.LSTM and Keras 3 LSTM, through lstmkit.io.interop, on committed fixtures.

The fixtures (tests/fixtures/*.npz, made by tests/make_fixtures.py) hold each peer's inputs,
weights, outputs, final states and gradients of the loss

    sum(outputs * w_out * mask) + sum(h_n * w_h) + sum(c_n * w_c)

so these tests need neither torch nor TensorFlow. Everything is float32, compared with atol 1e-5.
Padded outputs: torch's are zeros, as lstmkit's; Keras's LSTM repeats the previous output there
(Bidirectional zeros them), so Keras outputs are compared on real steps only.
"""

from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmkit import LSTMState, bidirectional_layer, lstm_layer
from lstmkit.io.interop import (
    from_keras_bidirectional,
    from_keras_lstm,
    from_torch_state_dict,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ATOL = 1e-5


def load(name):
    with np.load(FIXTURES / f"{name}.npz") as f:
        return {k: f[k] for k in f.files}


def run_layers(layers, x, mask, h0, c0, *, bidirectional):
    """Run the layers one by one, each from its own initial states; h0, c0 are torch's (L*D, B, H).

    Returns the last layer's outputs (B, T, D*H) and the final h, c stacked as torch's h_n, c_n.
    """
    h_n, c_n = [], []
    y = x
    for k, p in enumerate(layers):
        if bidirectional:
            init = (LSTMState(h0[2 * k], c0[2 * k]), LSTMState(h0[2 * k + 1], c0[2 * k + 1]))
            y, states = bidirectional_layer(p, y, mask, initial_state=init)
        else:
            y, state = lstm_layer(p, y, mask, initial_state=LSTMState(h0[k], c0[k]))
            states = (state,)
        h_n += [s.h for s in states]
        c_n += [s.c for s in states]
    return y, jnp.stack(h_n), jnp.stack(c_n)


@partial(jax.jit, static_argnames="bidirectional")
def forward_and_grads(layers, x, mask, h0, c0, w_out, w_h, w_c, *, bidirectional):
    """lstmkit's outputs and the gradients of the fixtures' loss w.r.t. layers, x, h0 and c0."""

    def loss(layers, x, h0, c0):
        out, h_n, c_n = run_layers(layers, x, mask, h0, c0, bidirectional=bidirectional)
        total = jnp.sum(out * w_out * mask[:, :, None]) + jnp.sum(h_n * w_h) + jnp.sum(c_n * w_c)
        return total, (out, h_n, c_n)

    (total, outputs), grads = jax.value_and_grad(loss, argnums=(0, 1, 2, 3), has_aux=True)(layers, x, h0, c0)
    return total, outputs, grads


def compare(name, what, got, want, where=None):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    if where is not None:
        got, want = got[where], want[where]
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL, err_msg=f"{name}: {what}")


def initial_states(f):
    """The fixture's initial states, or zeros where the peer ran without them."""
    if f["with_initial_state"]:
        return f["h0"], f["c0"]
    return np.zeros_like(f["h0"]), np.zeros_like(f["c0"])


@pytest.mark.parametrize("name", ["torch_lstm", "torch_bilstm_2layers"])
def test_torch(name):
    f = load(name)
    bidirectional = bool(f["bidirectional"])
    state_dict = {k.removeprefix("sd/"): v for k, v in f.items() if k.startswith("sd/")}
    layers = from_torch_state_dict(state_dict, num_layers=int(f["num_layers"]), bidirectional=bidirectional)
    h0, c0 = initial_states(f)
    mask = f["mask"]
    total, (out, h_n, c_n), (d_layers, dx, dh0, dc0) = forward_and_grads(
        layers, f["x"], mask, h0, c0, f["w_out"], f["w_h"], f["w_c"], bidirectional=bidirectional
    )
    compare(name, "out", out, f["out"])  # padded steps included: zeros in both
    compare(name, "h_n", h_n, f["h_n"])
    compare(name, "c_n", c_n, f["c_n"])
    compare(name, "loss", total, f["loss"])
    compare(name, "grad x", dx, f["grad_x"])
    if f["with_initial_state"]:
        compare(name, "grad h0", dh0, f["grad_h0"])
        compare(name, "grad c0", dc0, f["grad_c0"])
    for k, layer in enumerate(d_layers):
        directions = [(layer["forward"], ""), (layer["backward"], "_reverse")] if bidirectional else [(layer, "")]
        for g, suffix in directions:
            key = f"l{k}{suffix}"
            compare(name, f"grad weight_ih_{key}", g["W_x"].T, f[f"grad/weight_ih_{key}"])
            compare(name, f"grad weight_hh_{key}", g["W_h"].T, f[f"grad/weight_hh_{key}"])
            # b = b_ih + b_hh, so both biases get b's gradient.
            compare(name, f"grad bias_ih_{key}", g["b"], f[f"grad/bias_ih_{key}"])
            compare(name, f"grad bias_hh_{key}", g["b"], f[f"grad/bias_hh_{key}"])


@pytest.mark.parametrize("name", ["keras_lstm", "keras_bidirectional"])
def test_keras(name):
    f = load(name)
    bidirectional = bool(f["bidirectional"])
    weights = [f[f"weights/{n}"] for n in range(6 if bidirectional else 3)]
    params = from_keras_bidirectional(weights) if bidirectional else from_keras_lstm(weights)
    h0, c0 = initial_states(f)
    mask = f["mask"]
    total, (out, h_n, c_n), (d_layers, dx, dh0, dc0) = forward_and_grads(
        [params], f["x"], mask, h0, c0, f["w_out"], f["w_h"], f["w_c"], bidirectional=bidirectional
    )
    compare(name, "out on real steps", out, f["out"], where=mask)
    compare(name, "h_n", h_n, f["h_n"])
    compare(name, "c_n", c_n, f["c_n"])
    # return_sequences=False: the last real step's output of each direction, i.e. the final h's.
    compare(name, "final output", jnp.concatenate(list(h_n), axis=-1), f["final_out"])
    compare(name, "loss", total, f["loss"])
    compare(name, "grad x", dx, f["grad_x"])
    if f["with_initial_state"]:
        compare(name, "grad h0", dh0, f["grad_h0"])
        compare(name, "grad c0", dc0, f["grad_c0"])
    g = d_layers[0]
    g_list = [g["forward"], g["backward"]] if bidirectional else [g]
    for d, gd in enumerate(g_list):
        for n, key in enumerate(("W_x", "W_h", "b")):  # kernel, recurrent_kernel, bias
            compare(name, f"grad {key} direction {d}", gd[key], f[f"grad_weights/{3 * d + n}"])


def test_keras_bidirectional_zeroes_padded_outputs_and_keras_lstm_repeats():
    # Documents the peers' padded outputs, the reason Keras is compared on real steps only.
    f = load("keras_lstm")
    row = int(np.argmin(f["lengths"]))
    n = int(f["lengths"][row])
    np.testing.assert_array_equal(f["out"][row, n:], np.broadcast_to(f["out"][row, n - 1], f["out"][row, n:].shape))
    f = load("keras_bidirectional")
    np.testing.assert_array_equal(f["out"][~f["mask"]], 0.0)
