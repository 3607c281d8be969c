"""One LSTM step: stable activations and the four named gates.

Shape legend: B batch, E input features (embedding), H hidden units. Every function also takes
unbatched input (no B axis), and E = H = 1 gives the seed's scalar neuron.

Gate order is i, f, g, o, as in PyTorch and Keras, so weights copy across unchanged:

    i = sigmoid(x W_xi + h_prev W_hi + b_i)      input gate: how much of the candidate to write
    f = sigmoid(x W_xf + h_prev W_hf + b_f)      forget gate: how much of the old cell to keep
    g = tanh(x W_xg + h_prev W_hg + b_g)         candidate: what could be written
    o = sigmoid(x W_xo + h_prev W_ho + b_o)      output gate: how much of the cell to show
    c = f * c_prev + i * g                       new cell (long-term memory)
    h = o * tanh(c)                              new hidden state (short-term memory, the output)

Parameters are a plain dict (a pytree): W_x (E, 4H), W_h (H, 4H), b (4H,), the four gates side by
side in the last axis in the order i, f, g, o.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

GATE_NAMES = ("i", "f", "g", "o")


def sigmoid(z):
    """Logistic function 1 / (1 + exp(-z)), with no overflow anywhere.

    The textbook form overflows exp(-z) for z << 0. Writing it with e = exp(-|z|) <= 1:
    sigmoid(z) = 1 / (1 + e) for z >= 0 and e / (1 + e) for z < 0, which is exact at the limits
    (sigmoid(1e4) == 1, sigmoid(-1e4) == 0).

    >>> float(sigmoid(0.0))
    0.5
    """
    z = jnp.asarray(z)
    e = jnp.exp(-jnp.abs(z))
    return jnp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def tanh(z):
    """Hyperbolic tangent (e^z - e^-z) / (e^z + e^-z), with no overflow anywhere.

    The textbook form overflows e^z for |z| > ~89 (float32) and gives inf/inf = nan. With
    m = expm1(-2|z|) in [-1, 0], tanh(|z|) = -m / (2 + m): no overflow, exact +-1 at the limits,
    and expm1 keeps full precision near 0, where 1 - exp(-2|z|) would cancel. The sign is put
    back with `where`, not by multiplying with sign(z): sign has derivative 0, which made
    `jax.grad(tanh)(0.0)` 0 instead of 1.

    >>> import jax
    >>> float(tanh(0.0)), float(jax.grad(tanh)(0.0))
    (0.0, 1.0)
    """
    z = jnp.asarray(z)
    m = jnp.expm1(-2.0 * jnp.abs(z))
    t = -m / (2.0 + m)  # tanh(|z|)
    return jnp.where(z >= 0, t, -t)


class Gates(NamedTuple):
    """The four gate activations of one step, each (..., H)."""

    i: jnp.ndarray  # input gate, in (0, 1)
    f: jnp.ndarray  # forget gate, in (0, 1)
    g: jnp.ndarray  # candidate cell, in (-1, 1)
    o: jnp.ndarray  # output gate, in (0, 1)


def split_gates(z):
    """Split (..., 4H) pre-activations into the named (z_i, z_f, z_g, z_o), each (..., H)."""
    z_i, z_f, z_g, z_o = jnp.split(z, 4, axis=-1)
    return z_i, z_f, z_g, z_o


def gates_from_preactivation(z) -> Gates:
    """Apply each gate's activation to (..., 4H) pre-activations."""
    z_i, z_f, z_g, z_o = split_gates(z)
    return Gates(i=sigmoid(z_i), f=sigmoid(z_f), g=tanh(z_g), o=sigmoid(z_o))


def gate_scale_offset(H, dtype=jnp.float32):
    """Per-column (s, beta), each (4H,), such that s * tanh(s * z) + beta activates all four gates.

    sigmoid(z) = (1 + tanh(z / 2)) / 2, so the sigmoid gates i, f, o take s = beta = 1/2 and the
    candidate g takes s = 1, beta = 0. `lstmkit.core.bptt`'s scans use this to activate
    all 4H columns with one tanh: no overflow (tanh saturates) and one transcendental per entry.
    Its derivative needs only the output a: da/dz = s^2 - (a - beta)^2, which is a(1 - a) for
    the sigmoid gates and 1 - g^2 for the candidate.
    """
    half, one, zero = jnp.full(H, 0.5, dtype), jnp.ones(H, dtype), jnp.zeros(H, dtype)
    return jnp.concatenate([half, half, one, half]), jnp.concatenate([half, half, zero, half])


def activate_gates(z):
    """All four gates' activations from (..., 4H) pre-activations, as one (..., 4H) array [i f g o]."""
    s, beta = gate_scale_offset(z.shape[-1] // 4, z.dtype)
    return s * jnp.tanh(s * z) + beta


def lstm_cell(params, x, h_prev, c_prev):
    """One LSTM step: (h, c, gates) = lstm_cell(params, x, h_prev, c_prev).

    Args:
        params: {"W_x": (E, 4H), "W_h": (H, 4H), "b": (4H,)}.
        x: (B, E) or (E,) input at this step.
        h_prev, c_prev: (B, H) or (H,) previous hidden and cell state.

    Returns:
        h, c: (B, H) or (H,) new hidden and cell state; gates: `Gates(i, f, g, o)`.

    >>> import jax.numpy as jnp
    >>> p = {"W_x": jnp.zeros((3, 8)), "W_h": jnp.zeros((2, 8)), "b": jnp.zeros(8)}
    >>> h, c, gates = lstm_cell(p, jnp.ones(3), jnp.zeros(2), jnp.ones(2))
    >>> h.shape, c.tolist()  # f = 0.5 keeps half the old cell; i * g = 0.5 * 0 adds nothing
    ((2,), [0.5, 0.5])
    """
    z = x @ params["W_x"] + h_prev @ params["W_h"] + params["b"]  # (B, 4H) all four gates at once
    gates = gates_from_preactivation(z)
    c = gates.f * c_prev + gates.i * gates.g  # keep part of the old memory, write part of the new
    h = gates.o * tanh(c)  # expose part of the memory as the output
    return h, c, gates
