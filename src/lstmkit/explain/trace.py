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

from lstmkit.data.text import OOV_ID
from lstmkit.nn import layers as L

CHUNK = 64  # rows per batch of prefixes or occlusions; P is a multiple of it


GATES = ("i", "f", "g", "o")


STATES = ("c", "h")


def traced_forward(model, params, ids):
    """Logits (B, K) of the final Dense layer and one trace per LSTM layer, for ids (B, T).

    The pass is the model's own forward (`Architecture.apply(..., logits=True, trace=True)`): the
    code that training and predict run, down to the kernel or scan that `run_directions` chooses,
    which hands back what it keeps of every step. So the logits are the model's, bit for bit.

    Returns:
        logits (B, K); traces: per LSTM or Bidirectional layer, {"i", "f", "g", "o", "c", "h"},
        each (D, B, T, H) in *text order* (after a go_backwards layer that returns its sequence
        reversed, the layers above it read the text last token first: their traces are flipped back).
    """
    logits, traces = model.apply(params, ids, logits=True, trace=True)
    in_text_order, flipped = [], False  # flipped: the time axis runs last token first
    for k, trace in zip(recurrent_indices(model), traces):
        in_text_order.append({key: jnp.flip(a, 2) for key, a in trace.items()} if flipped else trace)
        layer = model.layers[k]
        flipped ^= isinstance(layer, L.LSTM) and layer.reverses_time
    return logits, in_text_order


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
