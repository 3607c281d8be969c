"""Pooling over time: what a classifier reads from an LSTM's sequence of states, one layer per choice.

Shape legend: B batch, T time, H features per step (2H for a BiLSTM). Each reduces (B, T, H) over
the real (unmasked) steps only, so padding never counts.
"""

from __future__ import annotations

import jax.numpy as jnp

from lstmkit.errors import LstmkitError
from lstmkit.nn.base import Layer


def _require_sequence(name, x):
    if x.ndim != 3:
        raise LstmkitError(
            f"{name} pools over time and needs (batch, time, features); set return_sequences=True on the LSTM before it"
        )


class GlobalMaxPool(Layer):
    """Max over the real (unmasked) time steps: (B, T, H) -> (B, H)."""

    def init(self, key, in_shape):
        return {}, (in_shape[-1],)

    def apply(self, params, x, mask, *, key=None):
        _require_sequence("GlobalMaxPool", x)
        if mask is not None:
            x = jnp.where(mask[..., None], x, -jnp.inf)
            # A fully padded row has no real step: give it zeros, not -inf.
            return jnp.where(mask.any(1)[:, None], x.max(1), 0.0), None
        return x.max(1), None


class GlobalAveragePool(Layer):
    """Mean over the real (unmasked) time steps: (B, T, H) -> (B, H)."""

    def init(self, key, in_shape):
        return {}, (in_shape[-1],)

    def apply(self, params, x, mask, *, key=None):
        _require_sequence("GlobalAveragePool", x)
        if mask is None:
            return x.mean(1), None
        m = mask[..., None].astype(x.dtype)
        return (x * m).sum(1) / jnp.maximum(m.sum(1), 1.0), None


class MaxMeanPool(Layer):
    """Concatenate max and mean over real steps: (B, T, H) -> (B, 2H)."""

    def init(self, key, in_shape):
        return {}, (2 * in_shape[-1],)

    def apply(self, params, x, mask, *, key=None):
        mx, _ = GlobalMaxPool().apply({}, x, mask)
        mean, _ = GlobalAveragePool().apply({}, x, mask)
        return jnp.concatenate([mx, mean], axis=-1), None


# The `pooling` setting of a preset: its name -> the layer after the (Bi)LSTM ("last" adds none:
# the LSTM returns its final states).
POOLINGS = {"max": GlobalMaxPool, "mean": GlobalAveragePool, "maxmean": MaxMeanPool}
