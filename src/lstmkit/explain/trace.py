"""The traced forward pass of a classifier, and the batched prefix and occlusion passes.

Shape legend: T tokens the model reads, P = T padded up to a multiple of CHUNK, D directions,
E embedding width, H hidden units, K outputs (1 for a binary sigmoid model), N rows of a batch.

Pure functions of an architecture (anything with `.layers`: a `Sequential` or its
`Architecture`) and parameters; the jitted `explain_arrays` takes the `Architecture`, a value, so
every model of one architecture shares its compiled code; `lstmkit.explain.report` turns their arrays into
the explanation. The module docstring of `lstmkit.explain.report` says what each pass computes.

Memory through time: `input_gradients` (dz/dx_t of the prediction z for every token's embedded
input, through the model's own forward and training's backward) and `cell_gradients` (||dz/dc_t||
per direction of the first LSTM layer, through a plain scan of the cell on the same parameters).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from lstmkit.core.bptt import scan_order, time_order
from lstmkit.core.cell import activate_gates
from lstmkit.core.lstm import merge
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


def direction_names(layer):
    """The directions of an LSTM or Bidirectional layer, in the order of its traces (D names)."""
    if isinstance(layer, L.Bidirectional):
        return ["forward", "backward"]
    return ["backward" if layer.go_backwards else "forward"]


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


# -- memory through time: the prediction's gradient with respect to each token and each cell ------


def prediction_cotangent(logits, target=-1):
    """The cotangent that picks the prediction out of logits (K,): one-hot at the predicted class
    (at `target` when it is >= 0: explain's --label), or [1.] for the one logit of a binary
    sigmoid model (its log-odds of class 1)."""
    if logits.shape[-1] == 1:
        return jnp.ones_like(logits)
    k = jnp.where(target >= 0, target, jnp.argmax(logits))
    return jax.nn.one_hot(k, logits.shape[-1], dtype=logits.dtype)


@partial(jax.jit, static_argnums=(0,))
def input_gradients(model, params, ids, target=-1):
    """dz/dx_t for every token's embedded input x_t, and x_t itself: (grad (P, E), x (P, E)).

    z is the prediction: the logit of the predicted class (the one logit of a binary model) for
    the text ids (P,). x_t is what the first LSTM reads at token t: the Embedding's output (plus
    the bigram vector of the pair t ends, when the model has them), dropout off. The gradient is
    the model's own forward, `Architecture.apply(..., perturb=kick)`, differentiated at kick = 0:
    the perturbation of the embedded words that adversarial training differentiates, so it runs
    training's hand-written backward (the fused kernel's or the scans'). The report keeps, per
    token, ||dz/dx_t|| and the gradient times the input, dz/dx_t . x_t (signed).

    >>> grad, x = input_gradients(model.architecture, model.params, jnp.array([5, 9, 0, 0]))  # doctest: +SKIP
    >>> grad.shape == x.shape == (4, model.layers[0].output_dim)  # doctest: +SKIP
    True
    """
    x, _ = model.layers[0].apply(params[0], ids[None], None)  # (1, P, E)
    logits, pullback = jax.vjp(
        lambda kick: model.apply(params, ids[None], logits=True, perturb=kick)[0], jnp.zeros_like(x)
    )
    (grad,) = pullback(prediction_cotangent(logits, target))
    return grad[0], x[0]


def _kicked_scan(dirs, x, mask, kick):
    """D LSTM directions over x (B, T, E) in one plain scan of the cell, with kick (D, B, T, H) added
    to the cell after each real step: c_t = f c_prev + i g + kick_t. dirs: D (params, reverse).
    Returns (hs (D, B, T, H) in text order, h_T (D, B, H)).

    Time-first in scan order inside, as `lstmkit.core.bptt`: a reverse direction reads the flipped
    axis, right padding first, which changes nothing.
    """
    reverse = tuple(r for _, r in dirs)
    W_x, W_h, b = (jnp.stack([p[key] for p, _ in dirs]) for key in ("W_x", "W_h", "b"))
    xs = scan_order(jnp.swapaxes(x, 0, 1), reverse)  # (T, D, B, E)
    ms = scan_order(jnp.swapaxes(mask, 0, 1)[..., None], reverse)  # (T, D, B, 1)
    kicks = time_order(jnp.transpose(kick, (2, 0, 1, 3)), reverse)  # (T, D, B, H): flipping is its own inverse

    def step(carry, inputs):
        h_prev, c_prev = carry  # (D, B, H)
        x_t, m_t, kick_t = inputs
        i, f, g, o = jnp.split(activate_gates(x_t @ W_x + h_prev @ W_h + b[:, None]), 4, axis=-1)
        c = f * c_prev + i * g + kick_t  # dz/dkick_t = dz/dc_t, at kick = 0
        h = o * jnp.tanh(c)
        c, h = jnp.where(m_t, c, c_prev), jnp.where(m_t, h, h_prev)  # a masked step keeps the state
        return (h, c), jnp.where(m_t, h, 0.0)

    zeros = jnp.zeros((len(dirs), x.shape[0], W_h.shape[1]), x.dtype)
    (h_T, _), ys = jax.lax.scan(step, (zeros, zeros), (xs, ms, kicks))
    return jnp.transpose(time_order(ys, reverse), (1, 2, 0, 3)), h_T


def _kicked_layer(layer, params, x, mask, kick):
    """An LSTM or Bidirectional layer's (output, mask), as its `apply` returns them, computed by
    `_kicked_scan`; kick (D, B, T, H) in text order."""
    bidirectional = isinstance(layer, L.Bidirectional)
    lstm = layer.layer if bidirectional else layer
    dirs = [(params["forward"], False), (params["backward"], True)] if bidirectional else [(params, lstm.go_backwards)]
    real = jnp.ones(x.shape[:2], bool) if mask is None else mask
    hs, h_T = _kicked_scan(dirs, x, real, kick)
    if not lstm.return_sequences:
        return (merge(h_T[0], h_T[1], layer.merge_mode) if bidirectional else h_T[0]), None
    if bidirectional:
        return merge(hs[0], hs[1], layer.merge_mode), mask
    if lstm.go_backwards:  # Keras hands the sequence back in the order it was read
        return jnp.flip(hs[0], 1), None if mask is None else jnp.flip(mask, 1)
    return hs[0], mask


@partial(jax.jit, static_argnums=(0,))
def cell_gradients(model, params, ids, target=-1):
    """||dz/dc_t|| for each direction of the first LSTM layer and each token t, and z's logits:
    (norms (D, P), logits (K,)); in text order (a backward direction's row t: the step that read t).

    z is the prediction, as in `input_gradients`. dz/dc_t is the total derivative with respect to
    the cell right after token t, through h_t and every later step (`lstmkit.core.bptt`'s dc_tot):
    how much the decision depends on the memory at t. It is the gradient with respect to a kick
    added to c_t, at kick = 0. The kernel and the scans carry c inside their loops with nothing to
    add a kick to (and one would cost the training loop), so this layer runs as a plain JAX scan of
    the cell (`lstmkit.core.cell.activate_gates`, as the scans) on the same parameters, differentiated by `jax.vjp`; the
    layers around it run their own code. A test checks its logits against `apply`'s.
    """
    layers, k = model.layers, recurrent_indices(model)[0]
    x, mask = layers[0].apply(params[0], ids[None], None)
    for layer, p in zip(layers[1:k], params[1:k]):  # dropout, the identity at inference
        x, mask = layer.apply(p, x, mask, key=None)
    rec = layers[k]
    D, H = (2, rec.layer.units) if isinstance(rec, L.Bidirectional) else (1, rec.units)

    def prediction(kick):
        out, out_mask = _kicked_layer(rec, params[k], x, mask, kick)
        for layer, p in zip(layers[k + 1 : -1], params[k + 1 : -1]):
            out, out_mask = layer.apply(p, out, out_mask, key=None)
        return layers[-1].logits(params[-1], out)[0]

    logits, pullback = jax.vjp(prediction, jnp.zeros((D, 1, ids.shape[0], H), x.dtype))
    (dc,) = pullback(prediction_cotangent(logits, target))
    return jnp.linalg.norm(dc[:, 0], axis=-1), logits


@partial(jax.jit, static_argnums=(0,))
def explain_arrays(model, params, ids, target=-1):
    """Everything numerical for one padded text ids (P,): see the module docstring.

    model: an `Architecture` (static: hashed by value), not a `Sequential`. target: the class whose
    logit the gradients follow (traced; -1: the predicted one).
    """
    logits, traces = traced_forward(model, params, ids[None])
    trajectory, occluded_logits = _prefixes_and_occlusion(model, params, ids, traces)
    traces = [{k: a[:, 0] for k, a in trace.items()} for trace in traces]  # (D, P, H), batch of one
    grad, embedded = input_gradients(model, params, ids, target)
    memory = {
        "gradient_norm": jnp.linalg.norm(grad, axis=-1),  # (P,)
        "gradient_x_input": (grad * embedded).sum(-1),  # (P,)
        "cell_gradient_norm": cell_gradients(model, params, ids, target)[0],  # (D, P)
    }
    return logits[0], traces, trajectory, occluded_logits, memory


@partial(jax.jit, static_argnums=(0,))
def output_arrays(model, params, ids):
    """What `explain_arrays` says of the output only: (logits (K,), trajectory (P, K), occluded
    logits (P, K)), without the gates' summaries and the gradients (an ensemble's other members)."""
    logits, traces = traced_forward(model, params, ids[None])
    return (logits[0], *_prefixes_and_occlusion(model, params, ids, traces))


def _prefixes_and_occlusion(model, params, ids, traces):
    """(trajectory (P, K): the logits of each prefix, occluded (P, K): with token t as [UNK])."""
    t = jnp.arange(ids.shape[0])
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
    return trajectory, _batched_apply(model, params, occluded, compact_table)
