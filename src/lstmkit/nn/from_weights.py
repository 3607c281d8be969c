"""A `Sequential` text classifier from weights trained elsewhere (torch, Keras, NumPy arrays)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from lstmkit.core.lstm import check_params
from lstmkit.data.text import TextVectorizer
from lstmkit.errors import LstmkitError
from lstmkit.io.interop import as_numpy
from lstmkit.nn import layers as L
from lstmkit.nn.model import Sequential


def model_from_weights(
    embedding,
    lstm_layers,
    dense,
    vocabulary,
    *,
    sequence_length=None,
    pooling="last",
    dense_layout="keras",
    activations=None,
    class_names=None,
    standardize="lower_and_strip_punctuation",
    strip_html=False,
):
    """A `Sequential` text classifier around weights trained elsewhere (PyTorch, Keras), for explain.

    Args:
        embedding: (V, E) table; row 0 is padding and is masked (mask_zero=True), row 1 is [UNK].
        lstm_layers: lstmkit layer params, as `interop.from_torch_state_dict` returns them, or a
            list of `interop.from_keras_lstm` / `from_keras_bidirectional` results: each
            {"W_x", "W_h", "b"} or {"forward": ..., "backward": ...} (then Bidirectional, concat).
        dense: [(W, b), ...] the classifier head, first to last. W is (in, out) with
            dense_layout="keras", or (out, in) with "torch" (nn.Linear.weight).
        vocabulary: tokens by id (a leading '' and '[UNK]' are added when missing), or a
            TextVectorizer with its vocabulary set.
        sequence_length: L, the number of tokens the model reads (None: all).
        pooling: "last" (final states, as torch's h_n or Keras's default), "max", "mean", "maxmean"
            (over the last layer's outputs).
        activations: one per Dense layer; default relu for hidden ones, and sigmoid for a
            1-unit last layer or softmax for K units.
        class_names: names of the output classes (default "0", "1", ...).

    Returns:
        A built `Sequential` (vectorizer, Embedding, LSTM layers, pooling, Dense head) that
        `explain`, `predict` and `save` take.
    """
    table = as_numpy(embedding, "embedding").astype(np.float32)  # torch tensors are detached first
    lstm_layers = [lstm_layers] if isinstance(lstm_layers, dict) else lstm_layers
    _check_arguments(table, lstm_layers, pooling, dense_layout)
    vectorizer = _vectorizer(vocabulary, sequence_length, standardize, strip_html)
    if vectorizer.vocab_size > table.shape[0]:
        raise LstmkitError(
            f"the vocabulary has {vectorizer.vocab_size} ids but the embedding only {table.shape[0]} rows"
        )

    layers, params = [L.Embedding(table.shape[0], table.shape[1], mask_zero=True)], [{"table": jnp.asarray(table)}]
    width = _add_lstm_layers(layers, params, lstm_layers, table.shape[1], pooled=pooling != "last")
    if pooling != "last":
        layers.append(L.POOLINGS[pooling]())
        params.append({})
        width = 2 * width if pooling == "maxmean" else width
    if not dense:
        raise LstmkitError("model_from_weights needs at least one Dense layer (the classifier's output)")
    width = _add_dense_layers(layers, params, dense, width, dense_layout, activations)
    if class_names is None:
        class_names = [str(k) for k in range(max(width, 2))]
    return Sequential(layers, class_names=class_names, vectorizer=vectorizer, params=params)


def _check_arguments(table, lstm_layers, pooling, dense_layout):
    """One line for each argument of `model_from_weights` that cannot be right."""
    if table.ndim != 2:
        raise LstmkitError(f"embedding must be a (V, E) table, got shape {table.shape}")
    if not lstm_layers:
        raise LstmkitError("model_from_weights needs at least one LSTM layer")
    if pooling not in ("last", "max", "mean", "maxmean"):
        raise LstmkitError(f"unknown pooling {pooling!r}; use last, max, mean or maxmean")
    if dense_layout not in ("keras", "torch"):
        raise LstmkitError(
            f"dense_layout must be 'keras' (W is (in, out)) or 'torch' (W is (out, in)), got {dense_layout!r}"
        )


def _vectorizer(vocabulary, sequence_length, standardize, strip_html):
    """The given TextVectorizer (its length set to sequence_length, if given), or one around the tokens."""
    if isinstance(vocabulary, TextVectorizer):
        vectorizer = vocabulary
        if sequence_length is not None:
            vectorizer.output_sequence_length = int(sequence_length)
        return vectorizer
    vectorizer = TextVectorizer(standardize=standardize, output_sequence_length=sequence_length, strip_html=strip_html)
    vectorizer.set_vocabulary(list(vocabulary))
    return vectorizer


def _add_lstm_layers(layers, params, lstm_layers, width, *, pooled):
    """Append an LSTM (or Bidirectional) layer and its float32 params per entry; returns the output width.

    width: E, the input width of the first LSTM layer. Every layer but the last returns sequences,
    and the last too when a pooling layer follows.
    """
    for k, layer_params in enumerate(lstm_layers):
        last = k == len(lstm_layers) - 1
        bidirectional = isinstance(layer_params, dict) and set(layer_params) == {"forward", "backward"}
        directions = [layer_params["forward"], layer_params["backward"]] if bidirectional else [layer_params]
        converted = []
        for d, p in enumerate(directions):
            _, H = check_params(p, f"LSTM layer {k}{' backward' if d else ''}", width)  # reads shapes only
            converted.append(
                {key: jnp.asarray(as_numpy(p[key], key).astype(np.float32)) for key in ("W_x", "W_h", "b")}
            )
        lstm = L.LSTM(H, return_sequences=pooled or not last)
        layers.append(L.Bidirectional(lstm) if bidirectional else lstm)
        params.append({"forward": converted[0], "backward": converted[1]} if bidirectional else converted[0])
        width = H * len(directions)
    return width


def _add_dense_layers(layers, params, dense, width, dense_layout, activations):
    """Append a Dense layer and its float32 (W, b) per entry, checked against the width before it;
    returns the output width (K)."""
    for k, (W, b) in enumerate(dense):
        W, b = as_numpy(W, f"Dense {k} W").astype(np.float32), as_numpy(b, f"Dense {k} b").astype(np.float32)
        if dense_layout == "torch":
            W = W.T
        if W.ndim != 2 or W.shape[0] != width or b.shape != (W.shape[1],):
            raise LstmkitError(
                f"Dense layer {k}: expected W ({width}, units) and b (units,) in Keras layout, got {W.shape} and {b.shape}"
            )
        last = k == len(dense) - 1
        act = (
            activations[k]
            if activations is not None
            else ("relu" if not last else "sigmoid" if W.shape[1] == 1 else "softmax")
        )
        layers.append(L.Dense(W.shape[1], act))
        params.append({"W": jnp.asarray(W), "b": jnp.asarray(b)})
        width = W.shape[1]
    return width
