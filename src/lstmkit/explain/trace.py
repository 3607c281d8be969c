"""The traced forward pass of a classifier, and the batched prefix and occlusion passes.

Shape legend: T tokens the model reads, P = T padded up to a multiple of CHUNK, D directions,
H hidden units, K outputs (1 for a binary sigmoid model), N rows of a batch.

Pure functions of an architecture (anything with `.layers`: a `Sequential` or its
`Architecture`) and parameters; the jitted `explain_arrays` takes the `Architecture`, a value, so
every model of one architecture shares its compiled code; `lstmkit.explain.report` turns their arrays into
the explanation. The module docstring of `lstmkit.explain.report` says what each pass computes.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from lstmkit.core import bptt
from lstmkit.core.lstm import merge
from lstmkit.data.text import OOV_ID
from lstmkit.nn import layers as L

CHUNK = 64  # rows per batch of prefixes or occlusions; P is a multiple of it


GATES = ("i", "f", "g", "o")


STATES = ("c", "h")


def traced_lstm(layer, params, x, mask):
    """Run an `LSTM` or `Bidirectional` layer through the plain forward functions, keeping the gates.

    Args:
        layer: `layers.LSTM` or `layers.Bidirectional`; params: its parameters.
        x: (B, T, E) inputs; mask: (B, T) bool or None.

    Returns:
        out, out_mask: the layer's output exactly as `layer.apply` gives it (reversed in time for
            go_backwards with return_sequences);
        trace: {"i", "f", "g", "o", "c", "h"}, each (D, B, T, H) in the order of the layer's input.
    """
    if isinstance(layer, L.Bidirectional):
        lstm, directions, reverse = layer.layer, [params["forward"], params["backward"]], (False, True)
    else:
        lstm, directions, reverse = layer, [params], (layer.go_backwards,)
    B, T, _ = x.shape
    D, H = len(directions), lstm.units
    if mask is None:
        mask = jnp.ones((B, T), bool)
    W_x = jnp.stack([p["W_x"] for p in directions])  # (D, E, 4H)
    W_h = jnp.stack([p["W_h"] for p in directions])  # (D, H, 4H)
    b = jnp.stack([p["b"] for p in directions])  # (D, 4H)
    x_s = bptt.scan_order(jnp.swapaxes(x, 0, 1), reverse)  # (T, D, B, E), scan order
    z_x = bptt.input_projection_forward(W_x, b, x_s)  # (T, D, B, 4H)
    m_s = bptt.scan_order(jnp.swapaxes(mask, 0, 1)[..., None], reverse)  # (T, D, B, 1)
    zeros = jnp.zeros((D, B, H), x.dtype)
    (y, h_T, _), (gates, h_seq, c_seq) = bptt.recurrence_forward(W_h, z_x, m_s, zeros, zeros)
    hs = jnp.transpose(bptt.time_order(y, reverse), (1, 2, 0, 3))  # (D, B, T, H)
    if isinstance(layer, L.Bidirectional):
        out = (
            merge(hs[0], hs[1], layer.merge_mode) if lstm.return_sequences else merge(h_T[0], h_T[1], layer.merge_mode)
        )
    elif layer.reverses_time:
        out, mask = jnp.flip(hs[0], 1), jnp.flip(mask, 1)  # as LSTM.apply: the sequence in the order read
    else:
        out = hs[0] if lstm.return_sequences else h_T[0]
    i, f, g, o = jnp.split(gates, 4, axis=-1)  # the kernel keeps the gates as one array [i f g o]
    steps = {"i": i, "f": f, "g": g, "o": o, "c": c_seq, "h": h_seq}  # each (T, D, B, H) in scan order
    trace = {k: jnp.transpose(bptt.time_order(a, reverse), (1, 2, 0, 3)) for k, a in steps.items()}
    return out, (mask if lstm.return_sequences else None), trace


def traced_forward(model, params, ids):
    """Logits (B, K) of the final Dense layer and one trace per LSTM layer, for ids (B, T); see
    `traced_lstm`. Traces are in text order. The probabilities are the final layer's activation of the logits."""
    x, mask, traces = ids, None, []
    flipped = False  # the time axis runs last token first: after an odd number of go_backwards sequences
    last = len(model.layers) - 1
    for k, (layer, p) in enumerate(zip(model.layers, params)):
        if isinstance(layer, (L.LSTM, L.Bidirectional)):
            x, mask, trace = traced_lstm(layer, p, x, mask)
            traces.append({key: jnp.flip(a, 2) for key, a in trace.items()} if flipped else trace)
            flipped ^= isinstance(layer, L.LSTM) and layer.reverses_time
        elif k == last:
            x = layer.logits(p, x)
        else:
            x, mask = layer.apply(p, x, mask, key=None)
    return x, traces


def recurrent_indices(model):
    return [k for k, layer in enumerate(model.layers) if isinstance(layer, (L.LSTM, L.Bidirectional))]


def is_causal(model):
    """True when the state after token t depends on tokens 0..t only and the head reads that state:
    forward LSTMs only, and nothing but Dense and Dropout after the last one."""
    rec = recurrent_indices(model)
    if not rec:
        return False
    if any(isinstance(model.layers[k], L.Bidirectional) or model.layers[k].go_backwards for k in rec):
        return False
    if model.layers[rec[-1]].return_sequences:
        return False
    return all(isinstance(layer, (L.Dense, L.Dropout)) for layer in model.layers[rec[-1] + 1 :])


def apply_compact(model, params, ids, table):
    """`model.apply(..., logits=True)` on ids into a smaller `table` holding the rows they need: (B, K).

    Every row of a batch of prefixes or occlusions reads the same few tokens, so their rows are
    gathered once into `table` (one per text position, plus padding and [UNK]) and the first LSTM
    projects that table instead of the Embedding's (the fused path of `Sequential.apply`, through the
    layers' own `apply`). Dropout layers are the identity at inference and are skipped.
    """
    layers = model.layers
    mask = (ids != 0) if layers[0].mask_zero else None
    k = 1
    while k < len(layers) and isinstance(layers[k], L.Dropout):  # SpatialDropout1D is a Dropout
        k += 1
    if k < len(layers) and isinstance(layers[k], (L.LSTM, L.Bidirectional)):
        x, mask = layers[k].apply(params[k], ids, mask, embedding=table)
        k += 1
    else:
        x = jnp.take(table, ids, axis=0)
    for layer, p in zip(layers[k:-1], params[k:-1]):
        x, mask = layer.apply(p, x, mask, key=None)
    return layers[-1].logits(params[-1], x)


def _batched_apply(model, params, rows, table):
    """`apply_compact` over (P, P) ids in chunks of CHUNK rows: (P, K) logits."""
    P = rows.shape[0]
    chunks = rows.reshape(P // CHUNK, CHUNK, rows.shape[1])
    return jax.lax.map(lambda batch: apply_compact(model, params, batch, table), chunks).reshape(P, -1)


def compact_inputs(embedding, params, ids):
    """The rows a text's prefixes and occlusions read, and where: (table, compact (P,), occluded (P, P)).

    Position j of the text is row j + 2 of the compact table; 0 stays padding, 1 is [UNK]; row t of
    `occluded` is the text with token t replaced by [UNK]. With bigram vectors a position's vector
    depends on the token before it too, so the table also holds, for each j, the vector of [UNK]
    after token j - 1 (row P + 2 + j) and of token j after an [UNK] (row 2P + 2 + j).
    """
    P = ids.shape[0]
    t = jnp.arange(P)
    compact = jnp.where(ids != 0, t + 2, 0)
    occluded = jnp.where(t[None, :] == t[:, None], OOV_ID, compact[None, :])  # row t: token t -> [UNK]
    table = params["table"]
    if not embedding.bigram_buckets:
        return jnp.concatenate([table[:2], jnp.take(table, ids, axis=0, mode="clip")]), compact, occluded
    unk = jnp.full_like(ids, OOV_ID)
    prev = jnp.pad(ids[:-1], (1, 0))
    full, _ = embedding.apply(params, ids[None], None)  # (1, P, E): every position in context
    unk_after_prev, _ = embedding.apply(params, jnp.stack([prev, unk], 1), None)  # (P, 2, E)
    after_unk, _ = embedding.apply(params, jnp.stack([unk, ids], 1), None)
    rows = jnp.concatenate([table[:2], full[0], unk_after_prev[:, 1], after_unk[:, 1]])  # (3P + 2, E)
    follows = (t[None, :] == t[:, None] + 1) & (ids[None, :] != 0)  # the token after the occluded one
    occluded = jnp.where(t[None, :] == t[:, None], P + 2 + t[:, None], occluded)
    occluded = jnp.where(follows, 2 * P + 2 + t[None, :], occluded)
    return rows, compact, occluded


@partial(jax.jit, static_argnums=(0,))
def explain_arrays(model, params, ids):
    """Everything numerical for one padded text ids (P,): see the module docstring.

    model: an `Architecture` (static: hashed by value), not a `Sequential`.
    """
    P = ids.shape[0]
    logits, traces = traced_forward(model, params, ids[None])
    t = jnp.arange(P)
    compact_table, compact, occluded = compact_inputs(model.layers[0], params[0], ids)
    if is_causal(model):
        head = model.layers[recurrent_indices(model)[-1] + 1 :]
        head_params = params[len(model.layers) - len(head) :]
        x = traces[-1]["h"][0, 0]  # (P, H): the last layer's h after each token
        for layer, p in zip(head[:-1], head_params[:-1]):
            x, _ = layer.apply(p, x, None, key=None)
        trajectory = head[-1].logits(head_params[-1], x)
    else:
        prefixes = jnp.where(t[None, :] <= t[:, None], compact[None, :], 0)  # row t: tokens 0..t, then padding
        trajectory = _batched_apply(model, params, prefixes, compact_table)
    occluded_logits = _batched_apply(model, params, occluded, compact_table)
    traces = [{k: a[:, 0] for k, a in trace.items()} for trace in traces]  # (D, P, H), batch of one
    return logits[0], traces, trajectory, occluded_logits
