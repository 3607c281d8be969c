"""Initialisers for LSTM weights, chosen by name; every random draw takes an explicit key.

Schemes:
    "keras": W_x glorot_uniform, W_h orthogonal (one (H, 4H) matrix), b zeros with the forget-gate
             bias set to 1 (unit_forget_bias), as `keras.layers.LSTM` does.
    "torch": every weight and bias uniform in (-1/sqrt(H), 1/sqrt(H)), as `torch.nn.LSTM` does
             (its two biases b_ih + b_hh are one bias here, so b is the sum of two draws).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstmkit.errors import LstmkitError

SCHEMES = ("keras", "torch")


def glorot_uniform(key, shape, dtype=jnp.float32):
    """Uniform in +-sqrt(6 / (fan_in + fan_out)), fans from a 2-D shape (fan_in, fan_out)."""
    limit = jnp.sqrt(6.0 / (shape[0] + shape[1]))
    return jax.random.uniform(key, shape, dtype, -limit, limit)


def orthogonal(key, shape, dtype=jnp.float32):
    """A matrix with orthonormal rows or columns (QR of a Gaussian, signs fixed), as Keras draws it."""
    rows, cols = shape
    a = jax.random.normal(key, (max(rows, cols), min(rows, cols)), jnp.float32)
    q, r = jnp.linalg.qr(a)
    q = q * jnp.sign(jnp.diag(r))  # make the decomposition unique, so q is uniformly distributed
    if rows < cols:
        q = q.T
    return q.astype(dtype)


def init_lstm(key, input_size, hidden_size, *, scheme="keras", unit_forget_bias=True, dtype=jnp.float32):
    """LSTM parameters {"W_x": (E, 4H), "W_h": (H, 4H), "b": (4H,)}, gate order i, f, g, o.

    >>> import jax
    >>> p = init_lstm(jax.random.key(0), input_size=3, hidden_size=2)
    >>> p["W_x"].shape, p["W_h"].shape, p["b"].tolist()
    ((3, 8), (2, 8), [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    """
    E, H = input_size, hidden_size
    k_x, k_h, k_b = jax.random.split(key, 3)
    if scheme == "keras":
        W_x = glorot_uniform(k_x, (E, 4 * H), dtype)
        # Keras draws the recurrent kernel (H, 4H) orthogonal as one matrix.
        W_h = orthogonal(k_h, (H, 4 * H), dtype)
        b = jnp.zeros(4 * H, dtype)
        if unit_forget_bias:
            b = b.at[H : 2 * H].set(1.0)  # the forget block: remember by default
    elif scheme == "torch":
        bound = 1.0 / jnp.sqrt(H)
        W_x = jax.random.uniform(k_x, (E, 4 * H), dtype, -bound, bound)
        W_h = jax.random.uniform(k_h, (H, 4 * H), dtype, -bound, bound)
        b = jax.random.uniform(k_b, (2, 4 * H), dtype, -bound, bound).sum(0)  # b_ih + b_hh
    else:
        raise LstmkitError(f"unknown initialiser scheme {scheme!r}; use one of {', '.join(SCHEMES)}")
    return {"W_x": W_x, "W_h": W_h, "b": b}


def init_bidirectional(key, input_size, hidden_size, **kwargs):
    """Parameters {"forward": ..., "backward": ...} for a bidirectional layer."""
    k_f, k_b = jax.random.split(key)
    return {
        "forward": init_lstm(k_f, input_size, hidden_size, **kwargs),
        "backward": init_lstm(k_b, input_size, hidden_size, **kwargs),
    }
