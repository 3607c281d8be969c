"""Adam that moves only the embedding-table rows a batch read (lazy Adam), its weight average kept exactly.

A batch of B x T tokens reads at most B T rows of the word and word-pair tables (110,000 rows
in the default preset), but dense Adam decays the moments of every row and moves every row by
its momentum, every step: on short texts that update costs more than the LSTM. Here each table
row r whose gradient is non-zero at step t (t = 1, 2, ...) is updated as Adam would,

    m_r <- b1 m_r + (1 - b1) g_r
    v_r <- b2 v_r + (1 - b2) g_r^2
    w_r <- w_r - lr_t (m_r / (1 - b1^t)) / (sqrt(v_r / (1 - b2^t)) + eps)

and every other row keeps its weights and moments until a batch reads it again. That is the
change of method (TensorFlow Addons' LazyAdam, PyTorch's SparseAdam): a row's momentum acts
only on the steps that read it. Every other weight (the LSTM, the head) gets optax's Adam.
Gradient clipping takes the global norm over all weights, tables included, as dense Adam's.

The moving average of the weights (`lstmkit.nn.optim.weight_average`) stays exact without
touching the unread rows: between the steps that read it a row is constant, so its average
after steps s+1..n is w + (avg_s - w) d_{s+1} ... d_n = w + (avg_s - w) exp(L_n - L_s), with
L the running sum of log d. Each row keeps the L of its last update (`decay_log`); the full
average is read out by `averaged_tables`.

Shape legend: R rows of a table, E its width, U rows updated in a step (at most B T).
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

TABLE_KEYS = ("table", "bigram_table")  # the Embedding's tables (lstmkit.nn.layers.Embedding)
B1, B2 = 0.9, 0.999  # Adam's, as optax.adam's defaults


class LazyAdamState(NamedTuple):
    """Steps taken; optax's state for the other weights; per table (in `tables` order) its
    moments m and v (R, E), its rows' average (R, E) as of their last update and that update's
    L (R,); and L, the sum of log d over the steps taken (0 without an average)."""

    count: jax.Array
    dense: Any
    mu: tuple
    nu: tuple
    average: tuple
    decay_log: tuple
    decay_log_sum: jax.Array


def _is_table(path):
    return bool(path) and getattr(path[-1], "key", None) in TABLE_KEYS


def tables(tree):
    """The embedding tables of a parameter tree, in flattening order."""
    return tuple(x for path, x in jax.tree_util.tree_flatten_with_path(tree)[0] if _is_table(path))


def without_tables(tree):
    """The tree with each embedding table replaced by None (an empty subtree to optax)."""
    return jax.tree_util.tree_map_with_path(lambda path, x: None if _is_table(path) else x, tree)


def assembled(structure, dense, new_tables):
    """A tree shaped as `structure`: its tables from new_tables (in order), the rest from dense
    (a `without_tables` tree)."""
    dense_leaves, table_leaves = iter(jax.tree.leaves(dense)), iter(new_tables)
    pick = lambda path, x: next(table_leaves) if _is_table(path) else next(dense_leaves)
    return jax.tree_util.tree_map_with_path(pick, structure)


class LazyAdam:
    """`init(params)` and `step(grads, state, params, max_rows)` -> (params, state); see the module.

    dense: the optax transformation of the other weights (Adam with the same learning rate, then
    the weight average if any; `lstmkit.nn.optim.make_optimizer` builds both); learning_rate: a
    number or an optax schedule of the step; clipnorm: None or the global norm's limit; average:
    0 or the weight average's decay (`lstmkit.nn.optim.weight_average`).
    """

    def __init__(self, dense, learning_rate, *, clipnorm=None, average=0.0, eps=1e-7):
        self.dense, self.learning_rate, self.clipnorm = dense, learning_rate, clipnorm
        self.average, self.eps = average, eps

    def init(self, params):
        rows = tables(params)
        return LazyAdamState(
            count=jnp.zeros([], jnp.int32),
            dense=self.dense.init(without_tables(params)),
            mu=tuple(jnp.zeros_like(w) for w in rows),
            nu=tuple(jnp.zeros_like(w) for w in rows),
            average=tuple(jnp.copy(w) for w in rows) if self.average else (),
            decay_log=tuple(jnp.zeros(w.shape[:1], jnp.float32) for w in rows) if self.average else (),
            decay_log_sum=jnp.zeros([], jnp.float32),
        )

    def step(self, grads, state, params, max_rows=None):
        """One step: the new params and state. max_rows: at most this many rows of a table have a
        non-zero gradient (B T for a batch of B x T tokens); None: any number."""
        n = state.count
        scale = jnp.float32(1.0)
        if self.clipnorm:  # optax.clip_by_global_norm's rule, over every weight
            g_norm = optax.tree.norm(grads)
            scale = jnp.where(g_norm < self.clipnorm, 1.0, self.clipnorm / g_norm)
        dense_grads = jax.tree.map(lambda g: g * scale, without_tables(grads))
        dense_params = without_tables(params)
        updates, dense_state = self.dense.update(dense_grads, state.dense, dense_params)
        dense_params = jax.tree.map(lambda p, u: p + u, dense_params, updates)
        lr = self.learning_rate(n) if callable(self.learning_rate) else self.learning_rate
        # the weight average's decay at this step, as weight_average's (1 when there is none)
        d = jnp.minimum(self.average, (1.0 + n) / (10.0 + n)) if self.average else jnp.float32(1.0)
        t = (n + 1).astype(jnp.float32)
        rows_step = partial(self._rows_step, scale=scale, t=t, lr=lr, d=d, L=state.decay_log_sum)
        moved = []
        for i, (g, w) in enumerate(zip(tables(grads), tables(params))):
            table = (w, state.mu[i], state.nu[i])
            if self.average:
                table += (state.average[i], state.decay_log[i])
            moved.append(_on_read_rows(rows_step, g, table, max_rows))
        new_params = assembled(params, dense_params, [m[0] for m in moved])
        state = LazyAdamState(
            count=n + 1,
            dense=dense_state,
            mu=tuple(m[1] for m in moved),
            nu=tuple(m[2] for m in moved),
            average=tuple(m[3] for m in moved) if self.average else (),
            decay_log=tuple(m[4] for m in moved) if self.average else (),
            decay_log_sum=state.decay_log_sum + jnp.log(d),
        )
        return new_params, state

    def _rows_step(self, g, w, m, v, *average, scale, t, lr, d, L):
        """Adam at step t on rows that were read, given their gradient g (U, E) (clipped by
        `scale`), weights, moments and (with a weight average) their average and its L (U,);
        returns them updated."""
        g = g * scale
        m = B1 * m + (1 - B1) * g  # first moment
        v = B2 * v + (1 - B2) * g * g  # second moment
        m_hat, v_hat = m / (1 - B1**t), v / (1 - B2**t)  # bias-corrected
        w_new = w - lr * (m_hat / (jnp.sqrt(v_hat) + self.eps))
        if not average:
            return w_new, m, v
        avg, L_row = average
        avg = _caught_up(w, avg, L_row, L)  # over the steps since the rows' last update ...
        # ... then this step's: avg <- d avg + (1 - d) w
        return w_new, m, v, d * avg + (1 - d) * w_new, jnp.full_like(L_row, L + jnp.log(d))


def _on_read_rows(rows_step, g, table, max_rows):
    """Apply rows_step(g_r, *table_r) to the rows of a table whose gradient g (R, E) is non-zero,
    leaving the others; table: its (R, ...) arrays. With room for every row (max_rows >= R) it
    runs on the whole table and keeps the unread rows by a mask; else on the U = max_rows slots of
    the read rows' indices, the unused ones past the table (they gather 0 and scatter nowhere)."""
    R = g.shape[0]
    read = jnp.any(g != 0, axis=1)  # (R,)
    if max_rows is None or max_rows >= R:
        new = rows_step(g, *table)
        return tuple(jnp.where(read.reshape((R,) + (1,) * (a.ndim - 1)), b, a) for a, b in zip(table, new))
    rows = jnp.nonzero(read, size=max_rows)[0]  # (U,) ascending
    slots = jnp.arange(max_rows)
    rows = jnp.where(slots < read.sum(), rows, R + slots)  # unused slots: distinct indices past the table
    # sorted and distinct, so XLA may gather and scatter the rows without ordering or conflicts
    hints = dict(indices_are_sorted=True, unique_indices=True)
    new = rows_step(*(a.at[rows].get(mode="fill", fill_value=0, **hints) for a in (g, *table)))
    return tuple(a.at[rows].set(b, mode="drop", **hints) for a, b in zip(table, new))


def _caught_up(w, avg, L_row, L):
    """Rows' average (U, E), last updated when the running sum of log d was L_row (U,), brought up
    to L: their weights w were constant since, so avg <- w + (avg - w) exp(L - L_row)."""
    return w + (avg - w) * jnp.exp(L - L_row)[:, None]


def averaged_tables(state, params):
    """Each table's weight average brought up to the last step."""
    return tuple(
        _caught_up(w, avg, L_row, state.decay_log_sum)
        for w, avg, L_row in zip(tables(params), state.average, state.decay_log)
    )
