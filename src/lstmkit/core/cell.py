"""One LSTM step: stable activations, the four named gates, and the step's backward by hand.

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

`lstm_cell_backward` is the step's backward: these six lines read bottom-up, given dh and dc
(the loss's gradients with respect to h and c); `lstm_cell_backward_autodiff` gets the same
numbers from `jax.vjp`, which is how `lstmkit cell --backward` checks them.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
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


class CellGradients(NamedTuple):
    """Every derivative of one backward step of `lstm_cell`, named as in its equations.

    d<name> is the gradient of the loss with respect to <name>; dz_<gate> is with respect to the
    gate's pre-activation. Shapes follow the forward: (..., H) per gate, (..., 4H) for dz.
    """

    do: jnp.ndarray  # through h = o * tanh(c)
    dc_tot: jnp.ndarray  # dc from the next step plus the path through tanh(c)
    di: jnp.ndarray  # through c = f * c_prev + i * g
    df: jnp.ndarray
    dg: jnp.ndarray
    dz_i: jnp.ndarray  # di * i (1 - i)
    dz_f: jnp.ndarray  # df * f (1 - f)
    dz_g: jnp.ndarray  # dg * (1 - g^2)
    dz_o: jnp.ndarray  # do * o (1 - o)
    dz: jnp.ndarray  # (..., 4H): the four side by side, order i, f, g, o
    dc_prev: jnp.ndarray  # (..., H)
    dh_prev: jnp.ndarray  # (..., H)
    dx: jnp.ndarray  # (..., E)
    dW_x: jnp.ndarray  # (E, 4H), summed over the batch
    dW_h: jnp.ndarray  # (H, 4H), summed over the batch
    db: jnp.ndarray  # (4H,), summed over the batch


def lstm_cell_backward(params, x, h_prev, c_prev, c, gates, dh, dc) -> CellGradients:
    """The backward of `lstm_cell`: its equations read bottom-up, one line per equation.

    Given the forward's inputs, its new cell c and its gates, and dh, dc (the loss's gradients
    with respect to the step's outputs h and c), returns every derivative of the step:

        do      = dh * tanh(c)                        h = o * tanh(c), through o
        dc_tot  = dc + dh * o * (1 - tanh(c)^2)       ... and through tanh(c)
        di      = dc_tot * g                          c = f * c_prev + i * g
        df      = dc_tot * c_prev
        dg      = dc_tot * i
        dc_prev = dc_tot * f
        dz_i    = di * i * (1 - i)                    i = sigmoid(z_i): sigmoid' = s (1 - s)
        dz_f    = df * f * (1 - f)                    f = sigmoid(z_f)
        dz_g    = dg * (1 - g^2)                      g = tanh(z_g):    tanh' = 1 - tanh^2
        dz_o    = do * o * (1 - o)                    o = sigmoid(z_o)
        dx      = dz W_x^T                            z = x W_x + h_prev W_h + b
        dh_prev = dz W_h^T
        dW_x    = x^T dz,  dW_h = h_prev^T dz,  db = sum over the batch of dz

    Shapes as in `lstm_cell` (unbatched or (B, ...)). `lstmkit.core.bptt` runs the same
    equations inside a scan, carrying dh_prev and dc_prev from step t to step t-1.

    >>> import jax.numpy as jnp
    >>> p = {"W_x": jnp.zeros((1, 4)), "W_h": jnp.zeros((1, 4)), "b": jnp.zeros(4)}
    >>> x, h_prev, c_prev = jnp.ones(1), jnp.zeros(1), jnp.ones(1)
    >>> h, c, gates = lstm_cell(p, x, h_prev, c_prev)
    >>> grads = lstm_cell_backward(p, x, h_prev, c_prev, c, gates, dh=jnp.zeros(1), dc=jnp.ones(1))
    >>> grads.dc_prev.tolist(), grads.df.tolist()  # c = f * c_prev + i * g with f = 0.5, c_prev = 1
    ([0.5], [1.0])
    """
    i, f, g, o = gates
    tanh_c = tanh(c)
    do = dh * tanh_c
    dc_tot = dc + dh * o * (1 - tanh_c * tanh_c)
    di = dc_tot * g
    df = dc_tot * c_prev
    dg = dc_tot * i
    dc_prev = dc_tot * f
    dz_i = di * i * (1 - i)
    dz_f = df * f * (1 - f)
    dz_g = dg * (1 - g * g)
    dz_o = do * o * (1 - o)
    dz = jnp.concatenate([dz_i, dz_f, dz_g, dz_o], axis=-1)
    dx = dz @ params["W_x"].T
    dh_prev = dz @ params["W_h"].T
    dW_x = jnp.einsum("...e,...k->ek", x, dz)  # one outer product per row, summed over the batch
    dW_h = jnp.einsum("...h,...k->hk", h_prev, dz)
    db = dz.reshape(-1, dz.shape[-1]).sum(0)
    return CellGradients(do, dc_tot, di, df, dg, dz_i, dz_f, dz_g, dz_o, dz, dc_prev, dh_prev, dx, dW_x, dW_h, db)


def lstm_cell_backward_autodiff(params, x, h_prev, c_prev, dh, dc) -> CellGradients:
    """`lstm_cell_backward`'s derivatives by `jax.vjp` of the forward instead of by hand: its check.

    Each group comes from the vjp of the forward from that point on, with (dh, dc) on its outputs
    (h, c): the gates (i, f, g, o) -> (h, c) gives di, df, dg, do; c -> (h, c) gives dc_tot;
    z -> (h, c) gives dz; (params, x, h_prev, c_prev) -> (h, c) gives the rest.
    """
    z = x @ params["W_x"] + h_prev @ params["W_h"] + params["b"]
    gates = gates_from_preactivation(z)

    def from_gates(i, f, g, o):
        c = f * c_prev + i * g
        return o * tanh(c), c

    di, df, dg, do = jax.vjp(from_gates, *gates)[1]((dh, dc))
    c = gates.f * c_prev + gates.i * gates.g
    (dc_tot,) = jax.vjp(lambda c: (gates.o * tanh(c), c), c)[1]((dh, dc))
    (dz,) = jax.vjp(lambda z: from_gates(*gates_from_preactivation(z)), z)[1]((dh, dc))
    dz_i, dz_f, dz_g, dz_o = split_gates(dz)
    step = lambda p, x, h_prev, c_prev: lstm_cell(p, x, h_prev, c_prev)[:2]
    dp, dx, dh_prev, dc_prev = jax.vjp(step, params, x, h_prev, c_prev)[1]((dh, dc))
    return CellGradients(
        do, dc_tot, di, df, dg, dz_i, dz_f, dz_g, dz_o, dz, dc_prev, dh_prev, dx, dp["W_x"], dp["W_h"], dp["b"]
    )
