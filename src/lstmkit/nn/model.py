"""A Keras-like `Sequential` classifier: layers in order, parameters as one pytree.

The seed's notebook carries over almost line for line:

    vectorize_layer = TextVectorizer(max_tokens=100, output_sequence_length=200)
    vectorize_layer.adapt(train.texts)
    model = Sequential()
    model.add(vectorize_layer)
    model.add(Embedding(100, 64, mask_zero=True))
    model.add(Bidirectional(LSTM(64)))
    model.add(Dense(64, activation="relu"))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(train.texts, train.labels, epochs=5, batch_size=64, validation_data=(test.texts, test.labels))
    loss, accuracy = model.evaluate(test.texts, test.labels)

A `TextVectorizer` first means the model takes raw strings; without one it takes token ids.
Losses are computed from logits: the final sigmoid or softmax is applied only for predictions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lstmkit.data.text import TextVectorizer
from lstmkit.errors import LstmkitError
from lstmkit.io import checkpoint
from lstmkit.nn import layers as L
from lstmkit.nn import train
from lstmkit.nn.optim import make_optimizer

LOSSES = ("binary_crossentropy", "sparse_categorical_crossentropy")


class Sequential:
    """Layers applied in order; an optional `TextVectorizer` first turns strings into ids.

    Attributes:
        vectorizer: the TextVectorizer, or None when the model takes ids.
        layers: the numerical layers (Embedding, LSTM, Bidirectional, Dense, ...).
        params: list of per-layer parameter dicts, set by `build` (or `fit`).
        class_names: names of the output classes (set by fit from the data, or given).
        inference_length: with a vectorizer, how many tokens of a text evaluation and prediction
            read; None reads as many as training (the vectorizer's output_sequence_length). An
            LSTM with pooling reads any length, so it can be trained on the first 400 tokens
            (fast) and still read a whole review when it predicts.
    """

    def __init__(self, layers=(), class_names=None, inference_length=None):
        self.inference_length = inference_length
        self.vectorizer = None
        self.layers = []
        self.params = None
        self.class_names = list(class_names) if class_names is not None else None
        self.optimizer = None
        self.loss = None
        self.history = None
        for layer in layers:
            self.add(layer)

    def add(self, layer):
        if isinstance(layer, TextVectorizer):
            if self.layers or self.vectorizer is not None:
                raise LstmkitError("a TextVectorizer can only be the first layer of a Sequential")
            self.vectorizer = layer
            return self
        if not isinstance(layer, L.Layer):
            raise LstmkitError(f"Sequential takes lstmkit layers, got {type(layer).__name__}")
        if self.layers and self.layers[-1].return_state:
            raise LstmkitError(
                f"{type(self.layers[-1]).__name__} with return_state=True gives [output, *states], but the next layer of a Sequential takes one array; drop return_state, or call the layer's apply directly to get the states"
            )
        self.layers.append(layer)
        self.params = None
        return self

    # -- numerics -----------------------------------------------------------------------------
    def init_params(self, key):
        """Fresh parameters for every layer from one key (split per layer); pure."""
        shape = (None,)  # token ids, any length
        params = []
        for layer, k in zip(self.layers, jax.random.split(key, max(len(self.layers), 1))):
            p, shape = layer.init(k, shape)
            params.append(p)
        return params

    def build(self, key=None, seed=0):
        """Initialise the parameters (seeded) and keep them on the model."""
        self.params = self.init_params(jax.random.key(seed) if key is None else key)
        return self.params

    @property
    def n_outputs(self):
        last = self.layers[-1] if self.layers else None
        if not isinstance(last, L.Dense):
            raise LstmkitError("a classifier's last layer must be Dense (1 unit with sigmoid, or K units with softmax)")
        return last.units

    def apply(self, params, ids, *, key=None, logits=False, perturb=None):
        """Forward pass on ids (B, T); returns probabilities, or logits (B, K) with logits=True.

        key: a PRNG key in training (dropout on), None at inference.
        perturb: (B, T, E) added to the Embedding's output (adversarial training), or None.
        """
        x, mask = ids, None
        n = len(self.layers)
        keys = jax.random.split(key, n) if key is not None else [None] * n
        done = -1  # layers up to this index already ran, fused into an LSTM
        for idx, (layer, p, k) in enumerate(zip(self.layers, params, keys)):
            if idx <= done:
                continue
            if logits and idx == n - 1 and isinstance(layer, L.Dense):
                return layer.logits(p, x)
            nxt = idx + 1
            while key is None and nxt < n and isinstance(self.layers[nxt], L.Dropout):
                nxt += 1  # dropout is the identity at inference: look past it
            if isinstance(layer, L.Embedding) and perturb is not None:
                x, mask = layer.apply(p, x, mask, key=k)
                x = x + perturb
                continue
            if (
                isinstance(layer, L.Embedding)
                and nxt < n
                and isinstance(self.layers[nxt], (L.LSTM, L.Bidirectional))
                and layer.input_dim <= x.size
            ):
                # x W_x = (table W_x)[ids]: project the small table instead of every token.
                mask = (x != 0) if layer.mask_zero else None
                x, mask = self.layers[nxt].apply(params[nxt], x, mask, embedding=p["table"])
                done = nxt
                continue
            x, mask = layer.apply(p, x, mask, key=k)
        return x

    def loss_fn(self, params, ids, labels, weight, key=None, perturb=None):
        """Weighted mean loss from logits, and the number of correct predictions.

        labels: classes (B,) int; or soft targets (float): P(class 1) (B,) for a binary model,
        distributions (B, K) for K classes (self-training's soft pseudo-labels). Cross-entropy
        against a soft target p is -p log q - (1-p) log(1-q); a hard label is the case p in {0, 1}.
        """
        z = self.apply(params, ids, key=key, logits=True, perturb=perturb)
        if z.shape[-1] == 1:  # binary: one logit, sigmoid
            z = z[:, 0]
            per_example = optax.sigmoid_binary_cross_entropy(z, labels.astype(z.dtype))
            correct = (z >= 0) == (labels >= 0.5)
        elif labels.ndim == 2:  # soft targets over K classes
            per_example = optax.softmax_cross_entropy(z, labels.astype(z.dtype))
            correct = z.argmax(-1) == labels.argmax(-1)
        else:
            per_example = optax.softmax_cross_entropy_with_integer_labels(z, labels)
            correct = z.argmax(-1) == labels
        total = jnp.maximum(weight.sum(), 1.0)
        return (per_example * weight).sum() / total, (correct * weight).sum()

    # -- Keras-like verbs ----------------------------------------------------------------------
    def compile(self, optimizer="adam", loss="binary_crossentropy", metrics=("accuracy",), learning_rate=1e-3):
        """Choose the optimizer (a name or an optax transformation) and the loss."""
        if loss not in LOSSES:
            raise LstmkitError(f"unknown loss {loss!r}; use one of {', '.join(LOSSES)}")
        self.optimizer = make_optimizer(optimizer, learning_rate) if isinstance(optimizer, str) else optimizer
        self.loss = loss
        self.metrics = list(metrics)
        return self

    def _ids(self, x, inference=False):
        """Inputs as a list of ragged id arrays (from strings when a vectorizer is first); for
        inference, texts are cut at `inference_length` tokens instead of the training length."""
        if self.vectorizer is not None:
            if isinstance(x, str):
                x = [x]
            return self.vectorizer.encode_ragged(list(x), self.inference_length if inference else None)
        if isinstance(x, np.ndarray) and x.ndim == 2:
            # A padded id matrix: the real tokens end at the last non-zero id.
            return [row[: np.flatnonzero(row).max() + 1] if row.any() else row[:0] for row in x.astype(np.int32)]
        return [np.asarray(row, np.int32) for row in x]

    def fit(self, x, y, *, epochs=1, batch_size=64, validation_data=None, **kwargs):
        """Train; returns the history dict (loss, accuracy, val_loss, val_accuracy per epoch).

        Extra options (see `lstmkit.nn.train.fit`): seed, bucket, shuffle_buffer, verbose, progress,
        early_stopping_patience, monitor, on_epoch_end (checkpoints), and initial_epoch,
        opt_state, history, best to continue an interrupted run.
        """
        return train.fit(self, x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data, **kwargs)

    def evaluate(self, x, y, *, batch_size=256, return_dict=False):
        """(loss, accuracy) on labelled data, as Keras returns them; a dict with return_dict."""
        result = train.evaluate(self, x, y, batch_size=batch_size)
        return result if return_dict else (result["loss"], result["accuracy"])

    def predict(self, x, *, batch_size=256):
        """Probabilities: (N, 1) for a binary model (of class 1), (N, K) for K classes."""
        return train.predict(self, x, batch_size=batch_size)

    def save(self, directory, **extra):
        checkpoint.save_model(self, directory, **extra)

    def get_config(self):
        return {
            "layers": [L.layer_to_config(layer) for layer in self.layers],
            "class_names": self.class_names,
            "loss": self.loss,
            "inference_length": self.inference_length,
        }

    def summary(self):
        """One line per layer with its output shape and parameter count."""
        if self.params is None:
            self.build()
        lines, shape, total = [], (None,), 0
        for layer, p in zip(self.layers, self.params):
            _, shape = layer.init(jax.random.key(0), shape)
            n = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(p))
            total += n
            lines.append(f"{type(layer).__name__:<20} {('B',) + tuple(shape)!s:<22} {n:>10,}")
        lines.append(f"{'total':<43} {total:>10,}")
        return "\n".join(lines)


def load_model(directory):
    """A `Sequential` from its model directory (see `lstmkit.io.checkpoint`): layers from the
    config, weights by name, shapes and checksums verified."""
    directory, config, weights, vectorizer = checkpoint.read_model(directory)
    mc = config["model"]
    model = Sequential(
        [L.layer_from_config(c) for c in mc["layers"]],
        class_names=mc.get("class_names"),
        inference_length=mc.get("inference_length"),
    )
    model.vectorizer = vectorizer
    model.loss = mc.get("loss")
    template = jax.eval_shape(model.init_params, jax.random.key(0))
    model.params = checkpoint.unflatten_like(template, weights)
    model.train_config = config.get("train_config")
    model.directory = directory
    return model
