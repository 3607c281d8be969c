"""Layers for a Keras-like `Sequential`: plain objects that own configuration, not parameters.

Shape legend: B batch, T time, E embedding, H hidden units, V vocabulary, U dense units.

Each layer has three methods:
    init(key, in_shape) -> (params, out_shape)        shapes exclude the batch axis
    apply(params, x, mask, *, key) -> (x, mask)       key is None at inference (no dropout); x is
                                                      [output, *states] for a layer with return_state
    get_config() -> dict                              enough to rebuild it with `layer_from_config`

Parameters are plain pytrees (dicts of arrays), so optax, checkpoints and the interop see them
directly. The mask (B, T) travels with the activations from the Embedding to the layer that
reduces over time.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstmkit.core import lstm as lstm_ops
from lstmkit.core.cell import sigmoid, tanh
from lstmkit.core.init import SCHEMES, glorot_uniform, init_lstm
from lstmkit.errors import LstmkitError
from lstmkit.nn import row_random
from lstmkit.nn.base import Layer
from lstmkit.nn.pooling import POOLINGS, GlobalAveragePool, GlobalMaxPool, MaxMeanPool

__all__ = [  # the pooling layers live in lstmkit.nn.pooling and are layers like the rest
    "ACTIVATIONS",
    "LAYER_TYPES",
    "LSTM",
    "POOLINGS",
    "Bidirectional",
    "Dense",
    "Dropout",
    "Embedding",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Layer",
    "MaxMeanPool",
    "SpatialDropout1D",
    "WordDropout",
    "bigram_ids",
    "layer_from_config",
    "layer_to_config",
]

ACTIVATIONS = {
    None: lambda x: x,
    "linear": lambda x: x,
    "relu": jax.nn.relu,
    "tanh": tanh,
    "sigmoid": sigmoid,
    "softmax": lambda x: jax.nn.softmax(x, axis=-1),
}


def _check_choice(name, value, choices):
    if value not in choices:
        raise LstmkitError(f"unknown {name} {value!r}; use one of {', '.join(str(c) for c in choices)}")


class Embedding(Layer):
    """Token ids (B, T) -> vectors (B, T, E); with mask_zero, id 0 is padding and masked.

    With `bigram_buckets` N > 0 each position also adds a vector for the pair it ends, hashed
    into N buckets (fastText's hashing trick), so the LSTM reads "not good" as a unit:

        x_t = E[w_t] + E_bigram[hash(w_{t-1}, w_t) mod N]      w_{-1} = 0 (padding)

    >>> import jax, jax.numpy as jnp
    >>> emb = Embedding(100, 8, mask_zero=True)
    >>> p, shape = emb.init(jax.random.key(0), (5,))
    >>> x, mask = emb.apply(p, jnp.array([[3, 7, 0, 0, 0]]), None)
    >>> x.shape, mask.tolist()
    ((1, 5, 8), [[True, True, False, False, False]])
    """

    def __init__(self, input_dim, output_dim, mask_zero=False, bigram_buckets=0, bigram_dropout=0.0):
        self.input_dim, self.output_dim, self.mask_zero = int(input_dim), int(output_dim), bool(mask_zero)
        self.bigram_buckets, self.bigram_dropout = int(bigram_buckets), float(bigram_dropout)
        if self.bigram_buckets < 0:
            raise LstmkitError(f"bigram_buckets must be 0 (off) or a number of hash buckets, got {bigram_buckets}")
        if not 0.0 <= self.bigram_dropout < 1.0:
            raise LstmkitError(f"bigram_dropout must be in [0, 1), got {bigram_dropout}")

    def init(self, key, in_shape):
        # Keras's default: uniform(-0.05, 0.05).
        params = {"table": jax.random.uniform(key, (self.input_dim, self.output_dim), jnp.float32, -0.05, 0.05)}
        if self.bigram_buckets:  # its own key, so the word table is the same with or without bigrams
            shape = (self.bigram_buckets, self.output_dim)
            params["bigram_table"] = jax.random.uniform(jax.random.fold_in(key, 1), shape, jnp.float32, -0.05, 0.05)
        return params, tuple(in_shape) + (self.output_dim,)

    def apply(self, params, ids, mask, *, key=None):
        if self.mask_zero:
            mask = ids != 0 if mask is None else mask & (ids != 0)
        # Ids past the table (a vocabulary larger than input_dim) are clipped by take's mode.
        x = jnp.take(params["table"], ids, axis=0, mode="clip")
        if self.bigram_buckets:
            pairs = jnp.take(params["bigram_table"], bigram_ids(ids, self.bigram_buckets), axis=0)
            if key is not None and self.bigram_dropout:
                # In training a position loses its pair's vector with this probability (not rescaled,
                # as word dropout): the LSTM must read the words when the pair is missing or rare.
                pairs = pairs * row_random.bernoulli(key, 1.0 - self.bigram_dropout, ids.shape)[..., None]
            x = x + pairs
        return x, mask

    def get_config(self):
        config = {"input_dim": self.input_dim, "output_dim": self.output_dim, "mask_zero": self.mask_zero}
        if self.bigram_buckets:  # absent when off, so configs saved before bigrams read the same
            config["bigram_buckets"] = self.bigram_buckets
        if self.bigram_dropout:
            config["bigram_dropout"] = self.bigram_dropout
        return config


def bigram_ids(ids, buckets):
    """The hash bucket of the pair each position ends: (w_{t-1}, w_t) -> [0, buckets), (B, T) -> (B, T).

    A multiplicative hash in uint32 (it wraps, which is the point); the first token pairs with 0.

    >>> import jax.numpy as jnp
    >>> bigram_ids(jnp.array([[5, 9, 5, 9]]), 1000).tolist()[0][1] == bigram_ids(jnp.array([[5, 9]]), 1000).tolist()[0][1]
    True
    """
    ids = ids.astype(jnp.uint32)
    prev = jnp.pad(ids[:, :-1], ((0, 0), (1, 0)))
    return ((prev * jnp.uint32(2654435761) + ids * jnp.uint32(40503)) % jnp.uint32(buckets)).astype(jnp.int32)


def _initial_states(initial_state, D):
    """A layer's `initial_state` as `run_directions` takes it: None, or D `LSTMState`s.

    Keras passes a flat list, [h, c] for an LSTM and [h_fwd, c_fwd, h_bwd, c_bwd] for a
    Bidirectional; an `LSTMState` (or a pair per direction) is taken too. Shapes are checked there.
    """
    if initial_state is None:
        return None
    if isinstance(initial_state, lstm_ops.LSTMState):
        items = [initial_state]
    elif isinstance(initial_state, (list, tuple)):
        items = list(initial_state)
    else:
        items = []
    if len(items) == D and all(isinstance(s, (list, tuple)) and len(s) == 2 for s in items):
        return [lstm_ops.LSTMState(*s) for s in items]
    if len(items) == 2 * D and not any(isinstance(s, (list, tuple)) for s in items):
        return [lstm_ops.LSTMState(items[2 * d], items[2 * d + 1]) for d in range(D)]
    want = "[h, c]" if D == 1 else "[h_fwd, c_fwd, h_bwd, c_bwd]"
    raise LstmkitError(f"initial_state must be {want}, each (batch, units), got {type(initial_state).__name__}")


class LSTM(Layer):
    """An LSTM layer over (B, T, E): returns (B, T, H) with return_sequences, else the final h (B, H).

    Args:
        units: H, the hidden size.
        return_sequences: output every step's h (zero on masked steps) instead of the last.
        go_backwards: read each sequence's real tokens from last to first. With return_sequences the
            sequence comes back reversed in time, as Keras returns it: the whole padded axis is
            flipped, out[:, T-1-t] is the h that read step t, and the mask is flipped with it, so
            a pooling or LSTM layer after it sees the same real steps. (Keras passes the input's
            mask on unflipped, which lines the mask up with the wrong steps.)
        return_state: also give the final state, as Keras does: `apply` returns [output, h, c]
            (h, c each (B, H)) in place of the output. For calling `apply` directly; a Sequential
            refuses a layer after it, since its next layer takes one array.
        init: "keras" (glorot/orthogonal/unit forget bias) or "torch" (uniform +-1/sqrt(H)).
        backward: "bptt" (hand-written; fused C++ loops on the CPU), "bptt-scan" (hand-written,
            JAX scans only) or "autodiff" (jax.grad of the scan).
    """

    def __init__(
        self, units, return_sequences=False, go_backwards=False, init="keras", backward="bptt", return_state=False
    ):
        _check_choice("initialiser", init, SCHEMES)
        self.units, self.return_sequences, self.go_backwards = int(units), bool(return_sequences), bool(go_backwards)
        self.init_scheme, self.backward, self.return_state = init, backward, bool(return_state)

    @property
    def reverses_time(self):
        """True when the output sequence runs last step first (go_backwards with return_sequences)."""
        return self.go_backwards and self.return_sequences

    def init(self, key, in_shape):
        T, E = in_shape
        params = init_lstm(key, E, self.units, scheme=self.init_scheme)
        return params, (T, self.units) if self.return_sequences else (self.units,)

    def apply(self, params, x, mask, *, key=None, embedding=None, initial_state=None, trace=False):
        """x (B, T, E); or token ids (B, T) with `embedding`, a (V, E) table (the fused Embedding path).

        initial_state: [h0, c0] (or an `LSTMState`), each (B, H) or (H,): the state before the first
            step read (the last one with go_backwards); None for zeros.
        trace: also return the gates and states of every step, from this very forward pass
            (`lstmkit.core.lstm.run_directions`): {"i", "f", "g", "o", "c", "h"}, each (1, B, T, H)
            in the input's time order.

        Returns (output, mask), or ([output, h, c], mask) with return_state; and the trace third.
        """
        (hs,), (state,), *traced = lstm_ops.run_directions(
            [params],
            x,
            mask,
            reverse=[self.go_backwards],
            initial_state=_initial_states(initial_state, 1),
            backward=self.backward,
            embedding=embedding,
            sequences=self.return_sequences,
            trace=trace,
        )
        if not self.return_sequences:
            out, mask = state.h, None
        elif self.go_backwards:
            # Keras hands the sequence back in the order it was read: the whole padded axis flipped.
            out, mask = jnp.flip(hs, 1), None if mask is None else jnp.flip(mask, 1)
        else:
            out = hs
        return ([out, state.h, state.c] if self.return_state else out), mask, *traced

    def spec(self):
        """The config and the backward pass (not saved in the config: it changes no number)."""
        return (*super().spec(), self.backward)

    def get_config(self):
        return {
            "units": self.units,
            "return_sequences": self.return_sequences,
            "go_backwards": self.go_backwards,
            "return_state": self.return_state,
            "init": self.init_scheme,
        }


class Bidirectional(Layer):
    """Wrap an LSTM to read forward and in reverse in one scan, then merge (concat, sum, mul, ave).

    Without return_sequences the output is merge(forward final h, backward final h), where the
    backward final h is its state after reading the first token (as Keras and PyTorch's h_n). With
    return_sequences both directions' outputs are in input order (Keras re-reverses the backward
    one). With the LSTM's return_state, `apply` returns [output, h_fwd, c_fwd, h_bwd, c_bwd].
    """

    def __init__(self, layer, merge_mode="concat"):
        if not isinstance(layer, LSTM):
            raise LstmkitError(f"Bidirectional wraps an LSTM layer, got {type(layer).__name__}")
        if layer.go_backwards:
            raise LstmkitError(
                "Bidirectional(LSTM(go_backwards=True)): Bidirectional already reads the input both ways; drop go_backwards"
            )
        _check_choice("merge mode", merge_mode, lstm_ops.MERGE_MODES)
        self.layer, self.merge_mode = layer, merge_mode

    @property
    def return_state(self):
        return self.layer.return_state

    def init(self, key, in_shape):
        k_f, k_b = jax.random.split(key)
        p_f, out = self.layer.init(k_f, in_shape)
        p_b, _ = self.layer.init(k_b, in_shape)
        H = self.layer.units
        width = 2 * H if self.merge_mode == "concat" else H
        return {"forward": p_f, "backward": p_b}, out[:-1] + (width,)

    def apply(self, params, x, mask, *, key=None, embedding=None, initial_state=None, trace=False):
        """x (B, T, E); or token ids (B, T) with `embedding`, a (V, E) table (the fused Embedding path).

        initial_state: [h_fwd, c_fwd, h_bwd, c_bwd] (Keras's order) or (forward, backward)
            `LSTMState`s, each (B, H) or (H,); None for zeros.
        trace: also return the gates and states of every step, as `LSTM.apply` does, each
            (2, B, T, H): forward, backward.

        Returns (output, mask), or ([output, h_fwd, c_fwd, h_bwd, c_bwd], mask) with return_state;
        and the trace third.
        """
        (hs_f, hs_b), (s_f, s_b), *traced = lstm_ops.run_directions(
            [params["forward"], params["backward"]],
            x,
            mask,
            reverse=[False, True],
            initial_state=_initial_states(initial_state, 2),
            backward=self.layer.backward,
            embedding=embedding,
            sequences=self.layer.return_sequences,
            trace=trace,
        )
        if self.layer.return_sequences:
            out = lstm_ops.merge(hs_f, hs_b, self.merge_mode)
        else:
            out, mask = lstm_ops.merge(s_f.h, s_b.h, self.merge_mode), None
        return ([out, s_f.h, s_f.c, s_b.h, s_b.c] if self.return_state else out), mask, *traced

    def spec(self):
        return (type(self).__name__, self.layer.spec(), self.merge_mode)

    def get_config(self):
        return {"layer": self.layer.get_config(), "merge_mode": self.merge_mode}


class Dense(Layer):
    """x W + b with an activation: (..., in) -> (..., units). Glorot-uniform W, zero b (Keras)."""

    def __init__(self, units, activation=None):
        _check_choice("activation", activation, list(ACTIVATIONS))
        self.units, self.activation = int(units), activation

    def init(self, key, in_shape):
        W = glorot_uniform(key, (in_shape[-1], self.units))
        return {"W": W, "b": jnp.zeros(self.units)}, tuple(in_shape[:-1]) + (self.units,)

    def logits(self, params, x):
        return x @ params["W"] + params["b"]

    def apply(self, params, x, mask, *, key=None):
        return ACTIVATIONS[self.activation](self.logits(params, x)), mask

    def get_config(self):
        return {"units": self.units, "activation": self.activation}


class Dropout(Layer):
    """Zero a fraction `rate` of activations in training (inverted: survivors scaled by 1/(1-rate))."""

    def __init__(self, rate):
        if not 0.0 <= float(rate) < 1.0:
            raise LstmkitError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def apply(self, params, x, mask, *, key=None):
        # `lstmkit.core.lstm.dropout`'s inverted dropout, its mask drawn per row (`lstmkit.nn.row_random`).
        if key is None or self.rate <= 0.0:
            return x, mask
        keep = row_random.bernoulli(key, 1.0 - self.rate, x.shape)
        return jnp.where(keep, x / (1.0 - self.rate), 0.0), mask

    def get_config(self):
        return {"rate": self.rate}


class SpatialDropout1D(Dropout):
    """Dropout of whole embedding channels for a sequence (B, T, E): the same units for every step."""

    def apply(self, params, x, mask, *, key=None):
        if key is None or self.rate == 0.0:
            return x, mask
        keep = row_random.bernoulli(key, 1.0 - self.rate, (x.shape[0], 1, x.shape[2]))
        return jnp.where(keep, x / (1.0 - self.rate), 0.0), mask


class WordDropout(Dropout):
    """Word dropout on token ids (B, T): in training each real token becomes [UNK] (id 1) with
    probability `rate`, padding (id 0) stays.

    The model then cannot lean on any one word (a movie's title, an actor's name) and must read
    the rest of the text. It works on ids, before the Embedding, so the Embedding and LSTM after
    it still take the fused path (the projected table gathered per step).

        ids    = [[5, 9, 7, 0]]  ->  [[5, 1, 7, 0]]   (one possible draw)
    """

    def apply(self, params, x, mask, *, key=None):
        if key is None or self.rate == 0.0:
            return x, mask
        drop = row_random.bernoulli(key, self.rate, x.shape) & (x > 1)
        return jnp.where(drop, 1, x).astype(x.dtype), mask


LAYER_TYPES = {
    cls.__name__: cls
    for cls in (
        Embedding,
        LSTM,
        Bidirectional,
        Dense,
        Dropout,
        SpatialDropout1D,
        WordDropout,
        GlobalMaxPool,
        GlobalAveragePool,
        MaxMeanPool,
    )
}


def layer_to_config(layer):
    return {"type": type(layer).__name__, **layer.get_config()}


def layer_from_config(config):
    config = dict(config)
    kind = config.pop("type", None)
    if kind not in LAYER_TYPES:
        raise LstmkitError(f"unknown layer type {kind!r} in the model config; known: {', '.join(LAYER_TYPES)}")
    if kind == "Bidirectional":
        # Saved before Bidirectional refused go_backwards, which it ignored: the model read it as False.
        inner = {**config["layer"], "go_backwards": False}
        return Bidirectional(LSTM(**inner), config.get("merge_mode", "concat"))
    return LAYER_TYPES[kind](**config)
