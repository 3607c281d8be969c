"""Backpropagation through time, written out by hand, as `jax.custom_vjp` forward/backward pairs.

Shape legend: B batch, T time, E input features, V vocabulary, H hidden units, D directions.
Inside, arrays are time-first in *scan order*: step s is time t = s for a forward direction and
t = T-1-s for a reverse one, so a reverse direction is just a forward one over flipped inputs.

A layer is three pairs, as in llm.c: a projection of the inputs for all steps at once, the
recurrence (the only part that must loop), and the merge back to batch-first outside.

1. Input projection, one GEMM over all steps:       z_x = x W_x + b           (T, D, B, 4H)
   backward:  dW_x = x^T dz_x,  db = sum dz_x,  dx = dz_x W_x^T
   When the input is an embedding lookup x = table[ids], x W_x + b = (table W_x + b)[ids]:
   project the (V, E) table once and gather rows, which is cheaper whenever V < B*T.
   backward:  dP = scatter-add of dz_x into rows ids,  dW_x = table^T dP,  db = sum dP,
              dtable = dP W_x^T

2. Recurrence, per step (m = mask, True on real tokens):
       z        = z_x_t + h_prev W_h
       i, f, g, o = sigmoid(z_i), sigmoid(z_f), tanh(z_g), sigmoid(z_o)
       c        = f * c_prev + i * g              where m, else c_prev
       h        = o * tanh(c)                     where m, else h_prev
       y_t      = h                               where m, else 0
   backward, the forward read bottom-up, carrying only dh and dc from step s+1 to step s:
       dh      += dy_t                            where m
       do       = dh * tanh(c)
       dc_tot   = dc + dh * o * (1 - tanh(c)^2)
       di, df, dg = dc_tot * g, dc_tot * c_prev, dc_tot * i
       dz       = [di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)]   where m, else 0
       dh_prev  = dz W_h^T                        where m, else dh
       dc_prev  = dc_tot * f                      where m, else dc
   after the loop, one GEMM over all steps:  dW_h = sum_t h_prev_t^T dz_t
   The forward saves the gates and the carried states, so the backward loop only multiplies by
   W_h^T: the one product that cannot leave the loop.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from lstmkit.cell import gates_from_preactivation, tanh


def scan_order(a, reverse):
    """A time-first array (T, ...) once per direction, flipped where reverse: (T, D, ...)."""
    return jnp.stack([jnp.flip(a, 0) if r else a for r in reverse], axis=1)


def time_order(a, reverse):
    """Undo `scan_order` on (T, D, ...): each direction back in time order (flipping is its own inverse)."""
    return jnp.stack([jnp.flip(a[:, d], 0) if r else a[:, d] for d, r in enumerate(reverse)], axis=1)


# -- 1. input projections ------------------------------------------------------------------------


def input_projection_forward(W_x, b, x, reverse):
    """z_x (T, D, B, 4H) = x W_x + b for every step and direction; x (B, T, E), W_x (D, E, 4H)."""
    x_t = jnp.swapaxes(x, 0, 1)  # (T, B, E)
    T, B, E = x_t.shape
    # One plain 2-D GEMM per direction (a batched einsum here makes XLA transpose the result).
    z = [(x_t.reshape(T * B, E) @ W_x[d] + b[d]).reshape(T, B, -1) for d in range(len(reverse))]
    return jnp.stack([jnp.flip(z_d, 0) if r else z_d for z_d, r in zip(z, reverse)], axis=1)


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def input_projection(W_x, b, x, reverse):
    return input_projection_forward(W_x, b, x, reverse)


def _input_projection_fwd(W_x, b, x, reverse):
    return input_projection_forward(W_x, b, x, reverse), (W_x, x)


def _input_projection_bwd(reverse, saved, dz_x):
    W_x, x = saved
    dz = time_order(dz_x, reverse)  # (T, D, B, 4H), time order to meet x
    x_t = jnp.swapaxes(x, 0, 1)
    T, B, E = x_t.shape
    x_2d = x_t.reshape(T * B, E)
    dz_2d = [dz[:, d].reshape(T * B, -1) for d in range(len(reverse))]
    dW_x = jnp.stack([x_2d.T @ g for g in dz_2d])  # sum over all steps: one GEMM per direction
    db = jnp.stack([g.sum(0) for g in dz_2d])
    dx = sum(g @ W_x[d].T for d, g in enumerate(dz_2d)).reshape(T, B, E)  # both directions read x
    return dW_x, db, jnp.swapaxes(dx, 0, 1)


input_projection.defvjp(_input_projection_fwd, _input_projection_bwd)


def embedding_projection_forward(table, W_x, b, ids_s):
    """z_x (T, D, B, 4H) = (table W_x + b)[ids]: project the (V, E) table once, then gather.

    ids_s: (T, D, B) token ids already in scan order.
    """
    projected = jnp.einsum("ve,dek->dvk", table, W_x) + b[:, None, :]  # (D, V, 4H)
    return jnp.stack([projected[d][ids_s[:, d]] for d in range(W_x.shape[0])], axis=1)


@jax.custom_vjp
def embedding_projection(table, W_x, b, ids_s):
    return embedding_projection_forward(table, W_x, b, ids_s)


def _embedding_projection_fwd(table, W_x, b, ids_s):
    return embedding_projection_forward(table, W_x, b, ids_s), (table, W_x, ids_s)


def _embedding_projection_bwd(saved, dz_x):
    table, W_x, ids_s = saved
    V, K = table.shape[0], dz_x.shape[-1]
    # dP[d, v] = sum of dz_x over the steps whose token is v.
    dP = jnp.stack([jax.ops.segment_sum(dz_x[:, d].reshape(-1, K), ids_s[:, d].reshape(-1), V) for d in range(W_x.shape[0])])
    dW_x = jnp.einsum("ve,dvk->dek", table, dP)
    db = dP.sum(axis=1)
    dtable = jnp.einsum("dvk,dek->ve", dP, W_x)
    return dtable, dW_x, db, None


embedding_projection.defvjp(_embedding_projection_fwd, _embedding_projection_bwd)


# -- 2. the recurrence ---------------------------------------------------------------------------


def recurrence_forward(W_h, z_x, m_s, h0, c0):
    """The plain forward loop; differentiable by `jax.grad` (the reference for the hand-written one).

    Args:
        W_h (D, H, 4H); z_x (T, D, B, 4H) and m_s (T, D, B, 1) bool, in scan order; h0, c0 (D, B, H).

    Returns:
        (y (T, D, B, H) zero where masked, h_T, c_T (D, B, H)), and the residuals for the
        backward: gates (each (T, D, B, H)) and the carried h and c after each step.
    """

    def step(carry, inputs):
        h_prev, c_prev = carry  # (D, B, H)
        z_x_t, m_t = inputs  # (D, B, 4H), (D, B, 1)
        gates = gates_from_preactivation(z_x_t + h_prev @ W_h)  # (D,B,H)@(D,H,4H): per direction
        c = gates.f * c_prev + gates.i * gates.g
        h = gates.o * tanh(c)
        c = jnp.where(m_t, c, c_prev)  # a masked step leaves the state as it was
        h = jnp.where(m_t, h, h_prev)
        return (h, c), (gates, h, c)

    (h_T, c_T), (gates, h_seq, c_seq) = jax.lax.scan(step, (h0, c0), (z_x, m_s))
    y = jnp.where(m_s, h_seq, 0.0)
    return (y, h_T, c_T), (gates, h_seq, c_seq)


@jax.custom_vjp
def recurrence(W_h, z_x, m_s, h0, c0):
    """`recurrence_forward`'s outputs, with the hand-written backward pass below."""
    return recurrence_forward(W_h, z_x, m_s, h0, c0)[0]


def _recurrence_fwd(W_h, z_x, m_s, h0, c0):
    outputs, residuals = recurrence_forward(W_h, z_x, m_s, h0, c0)
    return outputs, (W_h, m_s, h0, c0, residuals)


def _recurrence_bwd(saved, cotangents):
    W_h, m_s, h0, c0, (gates, h_seq, c_seq) = saved
    dy, dh_T, dc_T = cotangents  # (T, D, B, H), (D, B, H), (D, B, H)
    # The states each step started from, (T, D, B, H).
    h_prev_seq = jnp.concatenate([h0[None], h_seq[:-1]], axis=0)
    c_prev_seq = jnp.concatenate([c0[None], c_seq[:-1]], axis=0)
    W_h_T = jnp.swapaxes(W_h, 1, 2)  # (D, 4H, H)

    def step(carry, inputs):
        dh, dc = carry  # gradients w.r.t. this step's h and c, from later steps
        dy_t, m_t, i, f, g, o, c, c_prev = inputs
        dh = dh + jnp.where(m_t, dy_t, 0.0)  # y_t = h on real steps
        tanh_c = tanh(c)
        do = dh * tanh_c  # h = o * tanh(c)
        dc_tot = dc + dh * o * (1 - tanh_c * tanh_c)
        di = dc_tot * g  # c = f * c_prev + i * g
        df = dc_tot * c_prev
        dg = dc_tot * i
        dz_i = di * i * (1 - i)  # sigmoid' = s (1 - s)
        dz_f = df * f * (1 - f)
        dz_g = dg * (1 - g * g)  # tanh' = 1 - t^2
        dz_o = do * o * (1 - o)
        dz = jnp.where(m_t, jnp.concatenate([dz_i, dz_f, dz_g, dz_o], axis=-1), 0.0)  # (D, B, 4H)
        dh_prev = jnp.where(m_t, dz @ W_h_T, dh)  # a masked step passed h through unchanged
        dc_prev = jnp.where(m_t, dc_tot * f, dc)
        return (dh_prev, dc_prev), dz

    inputs = (dy, m_s, gates.i, gates.f, gates.g, gates.o, c_seq, c_prev_seq)
    (dh0, dc0), dz = jax.lax.scan(step, (dh_T, dc_T), inputs, reverse=True)  # dz (T, D, B, 4H)
    T, D, B, H = h_prev_seq.shape
    # After the loop: one GEMM per direction over all steps.
    dW_h = jnp.stack([h_prev_seq[:, d].reshape(T * B, H).T @ dz[:, d].reshape(T * B, -1) for d in range(D)])
    return dW_h, dz, None, dh0, dc0


recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


# -- the layer: projection, recurrence, back to batch-first --------------------------------------


def lstm_scan(W_x, W_h, b, x, mask, h0, c0, reverse, *, backward="bptt", table=None):
    """D directions of an LSTM over one input, in one scan.

    Args:
        W_x (D, E, 4H), W_h (D, H, 4H), b (D, 4H); mask (B, T) bool; h0, c0 (D, B, H);
        reverse: D bools (static).
        x: (B, T, E) inputs; or, with `table` (V, E), (B, T) token ids to look up in it.
        backward: "bptt" (the hand-written pairs above) or "autodiff" (jax.grad of the plain
            forward functions).

    Returns:
        hs (D, B, T, H) aligned with the input and zero on masked steps; h_T, c_T (D, B, H).
    """
    hand = backward == "bptt"
    m_s = scan_order(jnp.swapaxes(mask, 0, 1)[..., None], reverse)  # (T, D, B, 1)
    if table is not None:
        ids_s = scan_order(jnp.swapaxes(x, 0, 1), reverse)  # (T, D, B)
        z_x = (embedding_projection if hand else embedding_projection_forward)(table, W_x, b, ids_s)
    else:
        z_x = input_projection(W_x, b, x, reverse) if hand else input_projection_forward(W_x, b, x, reverse)
    if hand:
        y, h_T, c_T = recurrence(W_h, z_x, m_s, h0, c0)
    else:
        (y, h_T, c_T), _ = recurrence_forward(W_h, z_x, m_s, h0, c0)
    hs = jnp.transpose(time_order(y, reverse), (1, 2, 0, 3))  # (D, B, T, H)
    return hs, h_T, c_T
