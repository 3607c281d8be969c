"""Backpropagation through time, written out by hand, as `jax.custom_vjp` forward/backward pairs.

Shape legend: B batch, T time, E input features, V vocabulary, H hidden units, D directions.
Inside, arrays are time-first in *scan order*: step s is time t = s for a forward direction and
t = T-1-s for a reverse one, so a reverse direction is just a forward one over flipped inputs.

A layer is three pairs, as in llm.c: a projection of the inputs for all steps at once, the
recurrence (the only part that must loop), and the merge back to batch-first outside.

1. Input projection, one GEMM over all steps:       z_x = x W_x + b           (T, D, B, 4H)
   backward:  dW_x = x^T dz_x,  db = sum dz_x,  dx = dz_x W_x^T   (x in scan order; jax undoes the flips)
   When the input is an embedding lookup x = table[ids], x W_x + b = (table W_x + b)[ids]:
   project the (V, E) table once, P = table W_x + b, and let the recurrence gather each step's
   rows; cheaper whenever V < B*T.
   backward:  dP = scatter-add of dz into rows ids (in the recurrence's backward),
              dW_x = table^T dP,  db = sum dP,  dtable = dP W_x^T

2. Recurrence, per step (m = mask, True on real tokens):
       z        = z_x_t + h_prev W_h
       i, f, g, o = sigmoid(z_i), sigmoid(z_f), tanh(z_g), sigmoid(z_o)   (one tanh: cell.activate_gates)
       c        = f * c_prev + i * g              where m, else c_prev
       h        = o * tanh(c)                     where m, else h_prev
       y_t      = h                               where m, else 0
   backward, the forward read bottom-up, carrying only dh and dc from step s+1 to step s;
   one derivative per gate (di: the loss's gradient w.r.t. the gate i; dz_i: w.r.t. its pre-activation z_i):
       dh      += dy_t                            where m
       do       = dh * tanh(c)                    h = o * tanh(c), through o
       dc_tot   = dc + dh * o * (1 - tanh(c)^2)   ... and through tanh(c)
       di       = dc_tot * g                      c = f * c_prev + i * g
       df       = dc_tot * c_prev
       dg       = dc_tot * i
       dz_i     = di * i * (1 - i)                i = sigmoid(z_i)
       dz_f     = df * f * (1 - f)                f = sigmoid(z_f)
       dz_g     = dg * (1 - g^2)                  g = tanh(z_g)
       dz_o     = do * o * (1 - o)                o = sigmoid(z_o)
       dz       = concat(dz_i, dz_f, dz_g, dz_o)  where m, else 0   (gate order i, f, g, o)
       dh_prev  = dz W_h^T                        where m, else dh
       dc_prev  = dc_tot * f                      where m, else dc
   after the loop, one GEMM over all steps:  dW_h = sum_t h_prev_t^T dz_t
   The forward saves the gates and the carried states, so the backward loop only multiplies by
   W_h^T: the one product that cannot leave the loop.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstmkit.core.cell import Gates, activate_gates


def _flip_if(a, r):
    """a (T, ...) reversed in time where r."""
    return jnp.flip(a, 0) if r else a


def scan_order(a, reverse):
    """A time-first array (T, ...) once per direction, flipped where reverse: (T, D, ...)."""
    return jnp.stack([_flip_if(a, r) for r in reverse], axis=1)


def time_order(a, reverse):
    """Undo `scan_order` on (T, D, ...): each direction back in time order (flipping is its own inverse)."""
    return jnp.stack([_flip_if(a[:, d], r) for d, r in enumerate(reverse)], axis=1)


# -- 1. input projections ------------------------------------------------------------------------


def input_projection_forward(W_x, b, x_s):
    """z_x (T, D, B, 4H) = x W_x + b for every step and direction; x_s (T, D, B, E) in scan order."""
    T, D, B, E = x_s.shape
    # One plain 2-D GEMM per direction (a batched einsum here makes XLA transpose the result).
    return jnp.stack([(x_s[:, d].reshape(T * B, E) @ W_x[d] + b[d]).reshape(T, B, -1) for d in range(D)], axis=1)


@jax.custom_vjp
def input_projection(W_x, b, x_s):
    return input_projection_forward(W_x, b, x_s)


def _input_projection_fwd(W_x, b, x_s):
    return input_projection_forward(W_x, b, x_s), (W_x, x_s)


def _input_projection_bwd(saved, dz_x):
    W_x, x_s = saved
    T, D, B, E = x_s.shape
    x_2d = [x_s[:, d].reshape(T * B, E) for d in range(D)]
    dz_2d = [dz_x[:, d].reshape(T * B, -1) for d in range(D)]
    dW_x = jnp.stack([x.T @ g for x, g in zip(x_2d, dz_2d)])  # sum over all steps: one GEMM
    db = jnp.stack([g.sum(0) for g in dz_2d])
    dx_s = jnp.stack([(g @ W_x[d].T).reshape(T, B, E) for d, g in enumerate(dz_2d)], axis=1)
    return dW_x, db, dx_s


input_projection.defvjp(_input_projection_fwd, _input_projection_bwd)


def embedding_projection_forward(table, W_x, b):
    """P (D, V, 4H) = table W_x + b: every token's input projection, for the recurrence to gather.

    With x = table[ids], x W_x + b = P[ids]: projecting the (V, E) table once is cheaper than
    projecting every token whenever V < B*T, and the recurrence gathers one row per step.
    """
    return jnp.stack([table @ W_x[d] + b[d] for d in range(W_x.shape[0])])  # plain 2-D GEMMs


@jax.custom_vjp
def embedding_projection(table, W_x, b):
    return embedding_projection_forward(table, W_x, b)


def _embedding_projection_fwd(table, W_x, b):
    return embedding_projection_forward(table, W_x, b), (table, W_x)


def _embedding_projection_bwd(saved, dP):
    table, W_x = saved  # dP (D, V, 4H): the recurrence's gradient, summed over each token's steps
    dW_x = jnp.einsum("ve,dvk->dek", table, dP)
    db = dP.sum(axis=1)
    dtable = jnp.einsum("dvk,dek->ve", dP, W_x)
    return dtable, dW_x, db


embedding_projection.defvjp(_embedding_projection_fwd, _embedding_projection_bwd)


# -- 2. the recurrence ---------------------------------------------------------------------------


def _input_at(z_x, ids_t):
    """This step's input projections (D, B, 4H): z_x's row, or each direction's table rows ids_t."""
    if ids_t is None:
        return z_x
    return jnp.stack([jnp.take(z_x[d], ids_t[d], axis=0, mode="clip") for d in range(ids_t.shape[0])])


def _gates(gates):
    """The saved activations [i f g o] (..., 4H) taken apart: `Gates(i, f, g, o)`, each (..., H)."""
    return Gates(*jnp.split(gates, 4, axis=-1))


def recurrence_forward(W_h, z_x, m_s, h0, c0, ids_s=None):
    """The plain forward loop; differentiable by `jax.grad` (the reference for the hand-written one).

    Args:
        W_h (D, H, 4H); m_s (T, D, B, 1) bool in scan order; h0, c0 (D, B, H).
        z_x: the input projections (T, D, B, 4H) in scan order; or, with ids_s (T, D, B) token
            ids in scan order, a table (D, V, 4H) to gather each step's rows from.

    Returns:
        (y (T, D, B, H) zero where masked, h_T, c_T (D, B, H)), and the residuals for the
        backward: the gate activations [i f g o] (T, D, B, 4H) and the carried h and c after
        each step (T, D, B, H).
    """

    def step(carry, inputs):
        h_prev, c_prev = carry  # (D, B, H)
        x_t, m_t = inputs  # (D, B, 4H) or ids (D, B); (D, B, 1)
        z_x_t = _input_at(z_x, x_t) if ids_s is not None else x_t
        gates = activate_gates(z_x_t + h_prev @ W_h)  # (D,B,H)@(D,H,4H): per direction; one tanh
        i, f, g, o = _gates(gates)
        c = f * c_prev + i * g
        h = o * jnp.tanh(c)
        c = jnp.where(m_t, c, c_prev)  # a masked step leaves the state as it was
        h = jnp.where(m_t, h, h_prev)
        # Few, whole outputs per step: each extra one costs XLA a fusion per step.
        return (h, c), (gates, h, c)

    xs = (z_x if ids_s is None else ids_s, m_s)
    (h_T, c_T), (gates, h_seq, c_seq) = jax.lax.scan(step, (h0, c0), xs)
    y = jnp.where(m_s, h_seq, 0.0)
    return (y, h_T, c_T), (gates, h_seq, c_seq)


@jax.custom_vjp
def recurrence(W_h, z_x, m_s, h0, c0, ids_s=None):
    """`recurrence_forward`'s outputs, with the hand-written backward pass below."""
    return recurrence_forward(W_h, z_x, m_s, h0, c0, ids_s)[0]


def _recurrence_fwd(W_h, z_x, m_s, h0, c0, ids_s=None):
    outputs, residuals = recurrence_forward(W_h, z_x, m_s, h0, c0, ids_s)
    table_rows = None if ids_s is None else z_x.shape[1]
    return outputs, (W_h, m_s, h0, c0, ids_s, table_rows, residuals)


def _recurrence_bwd(saved, cotangents):
    W_h, m_s, h0, c0, ids_s, table_rows, (gates, h_seq, c_seq) = saved
    dy, dh_T, dc_T = cotangents
    h_prev_seq = jnp.concatenate([h0[None], h_seq[:-1]], axis=0)
    c_prev_seq = jnp.concatenate([c0[None], c_seq[:-1]], axis=0)
    W_h_T = jnp.swapaxes(W_h, 1, 2)

    def step(carry, inputs):
        dh, dc = carry  # (D, B, H), from step s+1
        dy_t, m_t, gates_t, c, c_prev = inputs
        i, f, g, o = _gates(gates_t)
        dh = dh + jnp.where(m_t, dy_t, 0.0)  # y_t = h
        tanh_c = jnp.tanh(c)
        do = dh * tanh_c  # h = o * tanh(c), through o
        dc_tot = dc + dh * o * (1 - tanh_c * tanh_c)  # ... and through tanh(c), added to dc from step s+1
        di = dc_tot * g  # c = f * c_prev + i * g
        df = dc_tot * c_prev
        dg = dc_tot * i
        dz_i = di * i * (1 - i)  # i = sigmoid(z_i)
        dz_f = df * f * (1 - f)  # f = sigmoid(z_f)
        dz_g = dg * (1 - g * g)  # g = tanh(z_g)
        dz_o = do * o * (1 - o)  # o = sigmoid(z_o)
        dz = jnp.where(m_t, jnp.concatenate([dz_i, dz_f, dz_g, dz_o], axis=-1), 0.0)  # (D, B, 4H), order i f g o
        dh_prev = jnp.where(m_t, dz @ W_h_T, dh)  # z = z_x_t + h_prev W_h; a masked step passes dh on
        dc_prev = jnp.where(m_t, dc_tot * f, dc)  # c = f * c_prev + ...; a masked step passes dc on
        return (dh_prev, dc_prev), dz

    inputs = (dy, m_s, gates, c_seq, c_prev_seq)
    (dh0, dc0), dz = jax.lax.scan(step, (dh_T, dc_T), inputs, reverse=True)
    T, D, B, H = h_prev_seq.shape
    dW_h = jnp.stack([h_prev_seq[:, d].reshape(T * B, H).T @ dz[:, d].reshape(T * B, -1) for d in range(D)])
    if ids_s is None:
        return dW_h, dz, None, dh0, dc0, None
    # A gathered table's gradient: each row gets the sum of dz over the steps that read it.
    dz_table = jnp.stack(
        [jax.ops.segment_sum(dz[:, d].reshape(T * B, -1), ids_s[:, d].reshape(T * B), table_rows) for d in range(D)]
    )
    return dW_h, dz_table, None, dh0, dc0, None


recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


# -- the layer: projection, recurrence, back to batch-first --------------------------------------


def lstm_scan(W_x, W_h, b, x, mask, h0, c0, reverse, *, backward="bptt", table=None, trace=False):
    """D directions of an LSTM over one input, in one scan.

    Args:
        W_x (D, E, 4H), W_h (D, H, 4H), b (D, 4H); mask (B, T) bool; h0, c0 (D, B, H);
        reverse: D bools (static).
        x: (B, T, E) inputs; or, with `table` (V, E), (B, T) token ids to look up in it.
        backward: "bptt" or "bptt-scan" (the hand-written pairs above), or "autodiff"
            (jax.grad of the plain forward functions). `lstmkit.core.lstm.run_directions` is
            what chooses between this and the same pairs in C++ (`lstmkit.core.fused`).
        trace: also return what the forward saves for the backward (to look at, not to
            differentiate): the gates [i f g o] (T, D, B, 4H) and the carried h, c (T, D, B, H),
            in scan order.

    Returns:
        hs (D, B, T, H) aligned with the input and zero on masked steps; h_T, c_T (D, B, H);
        with trace, also (gates, h_seq, c_seq).
    """
    return _directions(W_x, W_h, b, x, mask, h0, c0, tuple(reverse), backward, table, trace)


def _directions(W_x, W_h, b, x, mask, h0, c0, reverse, backward, table, trace=False):
    """`lstm_scan` on the scans: projection, recurrence, and back to batch-first."""
    hand = backward in ("bptt", "bptt-scan") and not trace  # a trace is not differentiated
    m_s = scan_order(jnp.swapaxes(mask, 0, 1)[..., None], reverse)  # (T, D, B, 1)
    ids_s = None
    if table is not None:
        ids_s = scan_order(jnp.swapaxes(x, 0, 1), reverse)  # (T, D, B)
        z_x = (embedding_projection if hand else embedding_projection_forward)(table, W_x, b)  # (D, V, 4H)
    else:
        x_s = scan_order(jnp.swapaxes(x, 0, 1), reverse)  # (T, D, B, E)
        z_x = (input_projection if hand else input_projection_forward)(W_x, b, x_s)
    if hand:
        y, h_T, c_T = recurrence(W_h, z_x, m_s, h0, c0, ids_s)
    else:  # the same loop that `recurrence` runs forward, with its residuals at hand
        (y, h_T, c_T), residuals = recurrence_forward(W_h, z_x, m_s, h0, c0, ids_s)
    hs = jnp.transpose(time_order(y, reverse), (1, 2, 0, 3))  # (D, B, T, H)
    return (hs, h_T, c_T, residuals) if trace else (hs, h_T, c_T)
