"""Random draws over a batch's rows that do not depend on how many processes hold the batch.

Shape legend: B global batch, P processes, B / P rows per process.

Dropout masks and virtual adversarial directions are drawn with the batch's rows first. A
process of a data-parallel step (`lstmkit.nn.parallel`) holds rows [p B/P, (p + 1) B/P) of the
global batch: it draws the whole batch's values, (B, ...), from the step's key, the same key in
every process, and keeps its rows,

    values_p = draw(key, (B, ...))[p B/P : (p + 1) B/P]

so each row gets the value one process gives it when it holds the whole batch, and P processes
train what one does, dropout included, up to float rounding. Drawing B rows where B / P are kept
costs a little random-number work, nothing next to the LSTM.

Outside `sharded_rows` (one process, and every jitted step but the parallel one) each draw is
JAX's own, unchanged.

    >>> keep = bernoulli(jax.random.key(0), 0.9, (4, 3))   # (4, 3) booleans
"""

from __future__ import annotations

import contextlib
import contextvars

import jax

_SHARDS: contextvars.ContextVar = contextvars.ContextVar("lstmkit_row_shards", default=None)


@contextlib.contextmanager
def sharded_rows(axis_name: str, processes: int):
    """While tracing a step inside `shard_map`: rows are split over `processes` along `axis_name`."""
    token = _SHARDS.set((axis_name, int(processes)))
    try:
        yield
    finally:
        _SHARDS.reset(token)


def _my_rows(draw, key, shape):
    shards = _SHARDS.get()
    if shards is None or shards[1] == 1:
        return draw(key, shape)
    axis_name, processes = shards
    rows = shape[0]
    whole = draw(key, (rows * processes, *shape[1:]))
    return jax.lax.dynamic_slice_in_dim(whole, jax.lax.axis_index(axis_name) * rows, rows, axis=0)


def bernoulli(key, p, shape):
    """`jax.random.bernoulli(key, p, shape)`, shape (rows, ...), as one process holding the whole batch draws it."""
    return _my_rows(lambda k, s: jax.random.bernoulli(k, p, s), key, shape)


def normal(key, shape, dtype):
    """`jax.random.normal(key, shape, dtype)`, shape (rows, ...), as one process holding the whole batch draws it."""
    return _my_rows(lambda k, s: jax.random.normal(k, s, dtype), key, shape)
