"""Backpropagation through time, written out by hand, as a `jax.custom_vjp`.

Shape legend: B batch, T time, E input features, H hidden units, D directions. Internally the
scan runs time-major, and "step s" is time t = s for a forward direction, t = T-1-s for a reverse
one: a reverse direction simply reads its inputs flipped in time.

Forward (per direction, per step; m is the mask, 1 on real tokens):

    z        = x_t W_x + b  +  h_prev W_h        input part precomputed for all steps as one GEMM
    i, f, g, o = sigmoid(z_i), sigmoid(z_f), tanh(z_g), sigmoid(z_o)
    c        = m * (f * c_prev + i * g) + (1 - m) * c_prev
    h        = m * (o * tanh(c))        + (1 - m) * h_prev
    y_t      = m * h                    output, zero on masked steps

Backward, the forward read bottom-up (dh, dc are carried from step s+1 back to step s):

    dh      += m * dy_t
    do       = dh * tanh(c)
    dc_tot   = dc + dh * o * (1 - tanh(c)^2)
    di, df, dg = dc_tot * g, dc_tot * c_prev, dc_tot * i
    dz       = m * [di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)]
    dh_prev  = m * (dz W_h^T) + (1 - m) * dh
    dc_prev  = m * (dc_tot * f) + (1 - m) * dc

and after the loop, one matrix product each over all B*T steps:

    dW_x = sum_t x_t^T dz_t      dW_h = sum_t h_prev_t^T dz_t      db = sum_t dz_t
    dx_t = sum_d dz_t W_x^T

The forward saves the gates and the carried states, so the backward scan only multiplies by
W_h^T: the one product that must stay inside the loop.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from lstmkit.cell import Gates, gates_from_preactivation, tanh


def _flip_reverse(a, reverse, time_axis):
    """Flip along time the directions that read in reverse; a has directions on axis 0."""
    return jnp.stack([jnp.flip(a[d], axis=time_axis - 1) if r else a[d] for d, r in enumerate(reverse)])


def lstm_scan_forward(W_x, W_h, b, x, mask, h0, c0, reverse):
    """The plain forward scan for D stacked directions; differentiable by `jax.grad`.

    Args:
        W_x (D, E, 4H), W_h (D, H, 4H), b (D, 4H); x (B, T, E); mask (B, T) bool;
        h0, c0 (D, B, H); reverse: D bools (static).

    Returns:
        (hs (D, B, T, H), h_T (D, B, H), c_T (D, B, H)), and the residuals the backward needs:
        gates (each (D, T, B, H), scan order), carried h and c after each step (D, T, B, H),
        and the mask in scan order (D, T, B, 1).
    """
    # Input projections for every step and direction: one GEMM, time-major (D, T, B, 4H).
    z_x = jnp.einsum("bte,dek->dtbk", x, W_x) + b[:, None, None, :]
    m = jnp.swapaxes(mask, 0, 1)[None, :, :, None].astype(x.dtype)  # (1, T, B, 1)
    m = jnp.broadcast_to(m, (len(reverse),) + m.shape[1:])
    z_x = _flip_reverse(z_x, reverse, time_axis=1)
    m = _flip_reverse(m, reverse, time_axis=1)

    def step(carry, inputs):
        h_prev, c_prev = carry  # (D, B, H)
        z_x_t, m_t = inputs  # (D, B, 4H), (D, B, 1)
        gates = gates_from_preactivation(z_x_t + h_prev @ W_h)  # (D,B,H)@(D,H,4H): per-direction
        c = gates.f * c_prev + gates.i * gates.g
        h = gates.o * tanh(c)
        # A masked step leaves the state as it was.
        c = m_t * c + (1 - m_t) * c_prev
        h = m_t * h + (1 - m_t) * h_prev
        return (h, c), (gates, h, c)

    (h_T, c_T), (gates, h_seq, c_seq) = jax.lax.scan(step, (h0, c0), (jnp.swapaxes(z_x, 0, 1), jnp.swapaxes(m, 0, 1)))
    # scan stacks on axis 0 = steps; move directions first: (D, T, B, H).
    gates = Gates(*(jnp.swapaxes(a, 0, 1) for a in gates))
    h_seq, c_seq = jnp.swapaxes(h_seq, 0, 1), jnp.swapaxes(c_seq, 0, 1)
    y = _flip_reverse(h_seq * m, reverse, time_axis=1)  # back to time order, zero on masked steps
    hs = jnp.swapaxes(y, 1, 2)  # (D, B, T, H)
    return (hs, h_T, c_T), (gates, h_seq, c_seq, m)


@partial(jax.custom_vjp, nondiff_argnums=(7,))
def lstm_scan(W_x, W_h, b, x, mask, h0, c0, reverse):
    """`lstm_scan_forward`'s outputs, with the hand-written backward pass below."""
    return lstm_scan_forward(W_x, W_h, b, x, mask, h0, c0, reverse)[0]


def _lstm_scan_fwd(W_x, W_h, b, x, mask, h0, c0, reverse):
    outputs, (gates, h_seq, c_seq, m) = lstm_scan_forward(W_x, W_h, b, x, mask, h0, c0, reverse)
    return outputs, (W_x, W_h, x, h0, c0, gates, h_seq, c_seq, m)


def _lstm_scan_bwd(reverse, residuals, cotangents):
    W_x, W_h, x, h0, c0, gates, h_seq, c_seq, m = residuals
    d_hs, dh_T, dc_T = cotangents  # (D, B, T, H), (D, B, H), (D, B, H)
    # The states each step started from: (D, T, B, H).
    h_prev_seq = jnp.concatenate([h0[:, None], h_seq[:, :-1]], axis=1)
    c_prev_seq = jnp.concatenate([c0[:, None], c_seq[:, :-1]], axis=1)
    dy = _flip_reverse(jnp.swapaxes(d_hs, 1, 2), reverse, time_axis=1)  # scan order (D, T, B, H)
    W_h_T = jnp.swapaxes(W_h, 1, 2)  # (D, 4H, H)

    def step(carry, inputs):
        dh, dc = carry  # gradients w.r.t. this step's h and c, from later steps
        dy_t, m_t, i, f, g, o, c, c_prev = inputs
        dh = dh + m_t * dy_t  # the output y_t = m * h
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
        dz = m_t * jnp.concatenate([dz_i, dz_f, dz_g, dz_o], axis=-1)  # (D, B, 4H), zero when masked
        dh_prev = m_t * (dz @ W_h_T) + (1 - m_t) * dh  # a masked step passed h through
        dc_prev = m_t * (dc_tot * f) + (1 - m_t) * dc
        return (dh_prev, dc_prev), dz

    inputs = (dy, m, gates.i, gates.f, gates.g, gates.o, c_seq, c_prev_seq)
    inputs = tuple(jnp.swapaxes(a, 0, 1) for a in inputs)  # steps first for the scan
    (dh0, dc0), dz = jax.lax.scan(step, (dh_T, dc_T), inputs, reverse=True)
    dz = jnp.swapaxes(dz, 0, 1)  # (D, T, B, 4H), scan order

    # Weight gradients: one matrix product each over all steps.
    dW_h = jnp.einsum("dtbh,dtbk->dhk", h_prev_seq, dz)
    db = dz.sum(axis=(1, 2))
    dz_time = _flip_reverse(dz, reverse, time_axis=1)  # back to time order to meet x
    dW_x = jnp.einsum("bte,dtbk->dek", x, dz_time)
    dx = jnp.einsum("dtbk,dek->bte", dz_time, W_x)
    return dW_x, dW_h, db, dx, None, dh0, dc0


lstm_scan.defvjp(_lstm_scan_fwd, _lstm_scan_bwd)
