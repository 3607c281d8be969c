"""The LSTM over a sequence: a scan of the cell over time, with masks, reverse and directions.

Shape legend: B batch, T time, E input features, H hidden units, D directions (1 or 2).

Inputs are batch-first, x (B, T, E), with a boolean mask (B, T) that is True on real tokens.
A masked step carries h and c through unchanged (Keras semantics) and outputs zeros (as
PyTorch's packed sequences do). With right-padded masks, reading in reverse visits only each
sequence's real tokens, last to first, because the padded steps come first and change nothing:
the same as Keras `go_backwards` with a mask and PyTorch packed sequences.

Both directions of a bidirectional layer run in one scan: their weights are stacked on a leading
D axis, and the reverse direction reads its inputs flipped in time. The backward pass is written
by hand in `lstmkit.core.bptt` (JAX scans) and, for float32 on the CPU, runs as the same loops in C++
(`lstmkit.core.fused`, one thread per direction); `backward="bptt-scan"` keeps the JAX scans, and
`backward="autodiff"` differentiates the plain scan with `jax.grad` instead, as a reference.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from lstmkit.core import bptt, fused
from lstmkit.errors import LstmkitError

MERGE_MODES = ("concat", "sum", "mul", "ave")


class LSTMState(NamedTuple):
    """Final state of one direction: h, c each (B, H)."""

    h: jnp.ndarray
    c: jnp.ndarray


def check_params(params, what="the LSTM", input_size=None):
    """Check one direction's {"W_x": (E, 4H), "W_h": (H, 4H), "b": (4H,)}; returns (E, H).

    Works on NumPy arrays, JAX arrays and traced values alike (it reads shapes only).
    """
    if not isinstance(params, dict) or set(params) != {"W_x", "W_h", "b"}:
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise LstmkitError(f"{what} must be a dict with keys W_x, W_h, b, got {got}")
    W_x, W_h, b = (jnp.shape(params[k]) for k in ("W_x", "W_h", "b"))
    if len(W_h) != 2 or W_h[1] != 4 * W_h[0]:
        raise LstmkitError(f"{what} W_h must be (H, 4H), got {W_h}")
    H = W_h[0]
    if len(W_x) != 2 or W_x[1] != 4 * H:
        raise LstmkitError(f"{what} W_x must be (E, 4H) = (E, {4 * H}), got {W_x}")
    if b != (4 * H,):
        raise LstmkitError(f"{what} b must be (4H,) = ({4 * H},), got {b}")
    if input_size is not None and W_x[0] != input_size:
        raise LstmkitError(f"{what} W_x expects {W_x[0]} input features, but the layer below gives {input_size}")
    return W_x[0], H


def _check_input(x, mask, n_axes):
    if x.ndim != n_axes:
        what = "(batch, time, features)" if n_axes == 3 else "token ids (batch, time)"
        raise LstmkitError(f"LSTM input must be {what}, got shape {x.shape}; add a batch axis with x[None]")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise LstmkitError(
            f"LSTM input has an empty batch or time axis, shape {x.shape}; pad empty sequences to at least one step and mask them"
        )
    if mask is not None and mask.shape != x.shape[:2]:
        raise LstmkitError(f"mask must be (batch, time) = {x.shape[:2]}, got {mask.shape}")


def _stack(params_list):
    return {k: jnp.stack([p[k] for p in params_list]) for k in ("W_x", "W_h", "b")}


def _initial(initial_state, D, B, H, dtype):
    """Initial (h0, c0), each (D, B, H): zeros, or one `LSTMState` per direction."""
    if initial_state is None:
        zeros = jnp.zeros((D, B, H), dtype)
        return zeros, zeros
    states = (
        list(initial_state)
        if isinstance(initial_state, (list, tuple)) and not isinstance(initial_state, LSTMState)
        else [initial_state]
    )
    if len(states) != D or not all(isinstance(s, (tuple, list)) and len(s) == 2 for s in states):
        raise LstmkitError(
            f"initial_state must be {D} LSTMState(h, c) pair(s), one per direction"
            + (" (forward, backward)" if D == 2 else "")
        )
    for s in states:
        for name, a in zip("hc", s):
            if jnp.shape(a) not in ((H,), (B, H)):
                raise LstmkitError(f"initial {name} must be ({B}, {H}) or ({H},), got {jnp.shape(a)}")
    h0 = jnp.stack([jnp.broadcast_to(s[0], (B, H)).astype(dtype) for s in states])
    c0 = jnp.stack([jnp.broadcast_to(s[1], (B, H)).astype(dtype) for s in states])
    return h0, c0


BACKWARDS = ("bptt", "bptt-scan", "autodiff")


def run_directions(
    params_list,
    x,
    mask=None,
    *,
    reverse,
    initial_state=None,
    backward="bptt",
    embedding=None,
    sequences=True,
    trace=False,
):
    """Run D LSTMs over the same input in one scan, each forward or in reverse.

    With `embedding` (a (V, E) table), x holds token ids (B, T) and the layer reads table[x]:
    the same result, computed by projecting the table once (faster when V < B*T).

    Args:
        params_list: D parameter dicts {"W_x": (E, 4H), "W_h": (H, 4H), "b": (4H,)}.
        x: (B, T, E) input; mask: (B, T) bool, True on real tokens, or None for all real.
        reverse: D bools, True for a direction that reads last to first.
        initial_state: None (zeros) or D `LSTMState`s, each (B, H) or (H,).
        backward: "bptt" (hand-written: the fused C++ loops of `lstmkit.core.fused` for float32 on the
            CPU, else `lstmkit.core.bptt`'s JAX scans), "bptt-scan" (always the JAX scans), or
            "autodiff" (`jax.grad` of the plain scan).
        sequences: False when only the final states are wanted: hs is then D Nones, and the fused
            kernel neither writes every step's h nor reads its gradient.
        trace: also return every step's gates and states, from the same forward code (the kernel
            or the scan that `backward` chooses) as a plain call runs: what it saves for its
            backward. For looking at (`lstmkit.explain`), not for differentiating.

    Returns:
        hs: D arrays (B, T, H), aligned with the input, zero on masked steps;
        states: D final `LSTMState`s;
        with trace, a third: {"i", "f", "g", "o", "c", "h"}, each (D, B, T, H) aligned with the
            input: the gates (0 on masked steps, where none is computed) and the states after
            each step (carried unchanged over masked steps).
    """
    H = _check_sizes(params_list, x, mask, embedding)
    dtype = params_list[0]["W_x"].dtype  # compute in the weights' precision
    if embedding is None:
        x = x.astype(dtype)
    B, T = x.shape[:2]
    if mask is None:
        mask = jnp.ones((B, T), bool)
    h0, c0 = _initial(initial_state, len(params_list), B, H, dtype)
    p = _stack(params_list)
    if backward not in BACKWARDS:
        raise LstmkitError(f"backward must be one of {', '.join(BACKWARDS)}, got {backward!r}")
    mask, reverse = mask.astype(bool), tuple(bool(r) for r in reverse)
    if backward == "bptt" and fused.usable(p["W_h"].dtype, H):
        # The same equations with the loops in C++ (lstmkit.core.fused): float32 on the CPU.
        hs, h_T, c_T, *saved = fused.fused_directions(
            p["W_x"], p["W_h"], p["b"], x, mask, h0, c0, reverse, embedding, sequences, trace=trace
        )
    else:
        hs, h_T, c_T, *saved = bptt.lstm_scan(
            p["W_x"], p["W_h"], p["b"], x, mask, h0, c0, reverse, backward=backward, table=embedding, trace=trace
        )
    D = len(params_list)
    hs, states = [hs[d] if sequences else None for d in range(D)], [LSTMState(h_T[d], c_T[d]) for d in range(D)]
    return (hs, states, _trace(*saved[0], mask, reverse)) if trace else (hs, states)


def _check_sizes(params_list, x, mask, embedding):
    """The directions' hidden size H, after checking that their weights agree with each other and
    with the input (or the embedding table the ids index)."""
    sizes = {check_params(p) for p in params_list}
    if len(sizes) != 1:
        raise LstmkitError(f"the directions' weights differ in size: {sorted(sizes)}")
    ((E, H),) = sizes
    _check_input(x, mask, 3 if embedding is None else 2)
    features = (x if embedding is None else embedding).shape[-1]
    if features != E:
        raise LstmkitError(f"the input has {features} features but the weights W_x expect {E}")
    return H


def _trace(gates, h_seq, c_seq, mask, reverse):
    """A forward's saved gates [i f g o] (T, D, B, 4H) and states (T, D, B, H), in scan order, as
    {"i", "f", "g", "o", "c", "h"}, each (D, B, T, H) aligned with the input; gates 0 where masked."""
    real = jnp.swapaxes(mask, 0, 1)[:, None, :, None]  # (T, 1, B, 1)
    i, f, g, o = jnp.split(jnp.where(real, bptt.time_order(gates, reverse), 0.0), 4, axis=-1)
    steps = {"i": i, "f": f, "g": g, "o": o, "c": bptt.time_order(c_seq, reverse), "h": bptt.time_order(h_seq, reverse)}
    return {name: jnp.transpose(a, (1, 2, 0, 3)) for name, a in steps.items()}


def lstm_layer(params, x, mask=None, *, initial_state=None, reverse=False, backward="bptt"):
    """One LSTM layer over a batch of sequences.

    Args:
        params: {"W_x": (E, 4H), "W_h": (H, 4H), "b": (4H,)}.
        x: (B, T, E); mask: (B, T) bool or None.
        initial_state: `LSTMState(h0, c0)` or None for zeros.
        reverse: read each sequence's real tokens from last to first.

    Returns:
        hs (B, T, H), zero on masked steps, and the final `LSTMState`.

    >>> import jax
    >>> from lstmkit.core.init import init_lstm
    >>> p = init_lstm(jax.random.key(0), input_size=8, hidden_size=16)
    >>> hs, state = lstm_layer(p, jax.numpy.ones((2, 5, 8)))
    >>> hs.shape, state.h.shape
    ((2, 5, 16), (2, 16))
    """
    hs, states = run_directions(
        [params],
        x,
        mask,
        reverse=[reverse],
        initial_state=None if initial_state is None else [initial_state],
        backward=backward,
    )
    return hs[0], states[0]


def merge(a, b, mode="concat"):
    """Merge the two directions' outputs: concat (..., 2H), or elementwise sum, mul, ave (..., H)."""
    if mode == "concat":
        return jnp.concatenate([a, b], axis=-1)
    if mode == "sum":
        return a + b
    if mode == "mul":
        return a * b
    if mode == "ave":
        return (a + b) / 2
    raise LstmkitError(f"unknown merge mode {mode!r}; use one of {', '.join(MERGE_MODES)}")


def bidirectional_layer(params, x, mask=None, *, merge_mode="concat", initial_state=None, backward="bptt"):
    """A bidirectional LSTM layer: a forward and a reverse LSTM over the same input, merged.

    Args:
        params: {"forward": lstm params, "backward": lstm params}.
        x: (B, T, E); mask: (B, T) bool or None.
        merge_mode: "concat" (B, T, 2H), or "sum", "mul", "ave" (B, T, H).
        initial_state: None or (forward `LSTMState`, backward `LSTMState`).

    Returns:
        merged hs; and (forward state, backward state). The backward direction's final h is its
        state after reading the first token, which is not hs[:, -1] (the trap PyTorch's notes name).
    """
    if merge_mode not in MERGE_MODES:
        raise LstmkitError(f"unknown merge mode {merge_mode!r}; use one of {', '.join(MERGE_MODES)}")
    (hs_f, hs_b), (s_f, s_b) = run_directions(
        [params["forward"], params["backward"]],
        x,
        mask,
        reverse=[False, True],
        initial_state=initial_state,
        backward=backward,
    )
    return merge(hs_f, hs_b, merge_mode), (s_f, s_b)


def dropout(key, x, rate):
    """Inverted dropout: zero a fraction `rate` of x and scale the rest by 1/(1-rate)."""
    if rate <= 0.0 or key is None:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def lstm_stack(
    layers,
    x,
    mask=None,
    *,
    initial_states=None,
    bidirectional=False,
    merge_mode="concat",
    dropout_rate=0.0,
    key=None,
    backward="bptt",
):
    """Stacked LSTM layers, with dropout between layers when a key is given (training).

    Args:
        layers: a list of layer params (lstm params, or {"forward", "backward"} if bidirectional).
        x: (B, T, E); mask: (B, T) bool or None.
        initial_states: None (zeros), or one entry per layer: an `LSTMState(h0, c0)`, or for a
            bidirectional stack a (forward, backward) pair of them; None for that layer's zeros.
            torch.nn.LSTM's h0, c0 (L*D, B, H) are entry k = LSTMState(h0[k], c0[k]), or
            (LSTMState(h0[2k], c0[2k]), LSTMState(h0[2k+1], c0[2k+1])) when bidirectional.

    Returns:
        the last layer's hs, and the list of each layer's final states.
    """
    if initial_states is None:
        initial_states = [None] * len(layers)
    elif isinstance(initial_states, LSTMState):
        raise LstmkitError("initial_states takes one state per layer, got one LSTMState; wrap it as [state]")
    elif len(initial_states) != len(layers):
        raise LstmkitError(
            f"initial_states needs one entry per layer ({len(layers)}), got {len(initial_states)}; use None for zeros"
        )
    states = []
    for n, (p, init) in enumerate(zip(layers, initial_states)):
        if n > 0:
            key, sub = jax.random.split(key) if key is not None else (None, None)
            x = dropout(sub, x, dropout_rate)
        if bidirectional:
            x, s = bidirectional_layer(p, x, mask, merge_mode=merge_mode, initial_state=init, backward=backward)
        else:
            x, s = lstm_layer(p, x, mask, initial_state=init, backward=backward)
        states.append(s)
    return x, states
