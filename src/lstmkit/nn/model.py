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

from dataclasses import replace

import jax
import numpy as np

from lstmkit.data.text import TextVectorizer
from lstmkit.data.token_file import TokenRows
from lstmkit.errors import LstmkitError
from lstmkit.io import checkpoint
from lstmkit.nn import layers as L
from lstmkit.nn import train
from lstmkit.nn.architecture import LOSSES, Architecture
from lstmkit.nn.optim import OptimizerSettings
from lstmkit.nn.predictions import Predictions, stored_thresholds, with_temperature


class Sequential:
    """Layers applied in order; an optional `TextVectorizer` first turns strings into ids.

    A thin holder of an `Architecture` (what it computes, shared by value with other models) and
    its own state. Everything it holds is set by its constructor or its methods (`add`,
    `compile`, `build`, `set_weights`, `fit`); it takes no other attributes (`__slots__`).

    Attributes:
        architecture: the `Architecture` (layers, loss, optimizer).
        vectorizer: the TextVectorizer, or None when the model takes ids.
        params: list of per-layer parameter dicts, set by `build`, `set_weights` or `fit`.
        ensemble: the other members' weights (a tuple of such lists; empty: one model), trained
            like `params` with other seeds; `predict` and `evaluate` read the mean of every
            member's probabilities. `fit` trains `params` only.
        opt_state, history: the optimizer state and the history dict of the last `fit`.
        class_names: names of the output classes (set by fit from the data, or given).
        inference_length: with a vectorizer, how many tokens of a text evaluation and prediction
            read; None reads as many as training (the vectorizer's output_sequence_length). An
            LSTM with pooling reads any length, so it can be trained on the first 400 tokens
            (fast) and still read a whole review when it predicts.
        input_length: without a vectorizer, the width of the id matrix it was trained on.
        train_config, directory: the configuration and model directory it was loaded from.
    """

    __slots__ = (
        "architecture",
        "class_names",
        "directory",
        "ensemble",
        "history",
        "inference_length",
        "input_length",
        "metrics",
        "opt_state",
        "params",
        "train_config",
        "vectorizer",
    )

    def __init__(
        self,
        layers=(),
        class_names=None,
        inference_length=None,
        *,
        vectorizer=None,
        params=None,
        loss=None,
        input_length=None,
        train_config=None,
        directory=None,
        ensemble=(),
    ):
        if loss is not None and loss not in LOSSES:
            raise LstmkitError(f"unknown loss {loss!r}; use one of {', '.join(LOSSES)}")
        self.architecture = Architecture((), loss)
        self.vectorizer = None
        self.class_names = list(class_names) if class_names is not None else None
        self.inference_length = inference_length
        self.input_length = input_length
        self.opt_state, self.history, self.metrics = None, None, ["accuracy"]
        self.train_config, self.directory = train_config, directory
        if vectorizer is not None:
            self.add(vectorizer)
        for layer in layers:
            self.add(layer)
        self.params = params
        self.ensemble = tuple(ensemble)

    @property
    def members(self):
        """Every member's weights, this model's own first: (params, *ensemble)."""
        return (self.params, *self.ensemble)

    @property
    def layers(self):
        """The numerical layers (Embedding, LSTM, Bidirectional, Dense, ...), a tuple."""
        return self.architecture.layers

    @property
    def loss(self):
        return self.architecture.loss

    @property
    def optimizer(self):
        """The optax transformation compile chose, or None before compile."""
        return self.architecture.make_optimizer()

    def add(self, layer):
        """Append a layer (a TextVectorizer only first); the parameters are built anew."""
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
        self.architecture = replace(self.architecture, layers=self.layers + (layer,))
        self.params = None
        return self

    # -- numerics -----------------------------------------------------------------------------
    def init_params(self, key):
        """Fresh parameters for every layer from one key (split per layer); pure."""
        return self.architecture.init_params(key)

    def build(self, key=None, seed=0):
        """Initialise the parameters (seeded) and keep them on the model."""
        self.params = self.init_params(jax.random.key(seed) if key is None else key)
        return self.params

    def set_weights(self, params):
        """Take these parameters (a list of per-layer dicts, as `build` gives); structure and shapes are checked."""
        template = jax.eval_shape(self.init_params, jax.random.key(0))
        want, got = jax.tree.structure(template), jax.tree.structure(list(params))
        shapes = [tuple(a.shape) for a in jax.tree.leaves(list(params))]
        if want != got or shapes != [tuple(a.shape) for a in jax.tree.leaves(template)]:
            raise LstmkitError(
                "the weights do not fit this model's layers (another structure or other shapes); build them with this model's init_params"
            )
        self.params = list(params)
        return self

    def set_members(self, members, history=None):
        """Make the model the ensemble of these weight sets (the first becomes `params`, the others
        `ensemble`), e.g. members fitted one after the other; `history`: the ensemble's, if given."""
        self.params, self.ensemble = members[0], tuple(members[1:])
        self.history = self.history if history is None else history
        return self

    @property
    def n_outputs(self):
        return self.architecture.n_outputs

    def apply(self, params, ids, *, key=None, logits=False, perturb=None, trace=False):
        """Forward pass on ids (B, T); see `Architecture.apply`."""
        return self.architecture.apply(params, ids, key=key, logits=logits, perturb=perturb, trace=trace)

    def loss_fn(self, params, ids, labels, weight, key=None, perturb=None):
        """Weighted mean loss and correct count; see `Architecture.loss_fn`."""
        return self.architecture.loss_fn(params, ids, labels, weight, key=key, perturb=perturb)

    # -- Keras-like verbs ----------------------------------------------------------------------
    def compile(self, optimizer="adam", loss=None, metrics=("accuracy",), learning_rate=1e-3, class_weight=None):
        """Choose the optimizer and the loss, which is the one fit trains with.

        optimizer: a name ("adam", "sgd", with learning_rate), `OptimizerSettings`, or an optax
            transformation (models then share compiled code only if given the very same object).
        loss: "binary_crossentropy" (the last layer Dense(1, "sigmoid")),
            "sparse_categorical_crossentropy" (Dense(K, "softmax")), or None for the one the last
            layer implies. One that does not fit the last layer is an error, here or in fit.
        class_weight: a weight per class index (a list, or a dict {index: weight}, as Keras's
            `fit(class_weight=...)`; missing classes weigh 1) that multiplies its examples' loss, in
            training and validation; None weighs all alike.
        """
        if loss is not None and loss not in LOSSES:
            raise LstmkitError(f"unknown loss {loss!r}; use one of {', '.join(LOSSES)}")
        if isinstance(optimizer, str):
            optimizer = OptimizerSettings(optimizer, learning_rate)
        if isinstance(class_weight, dict):
            class_weight = [class_weight.get(k, 1.0) for k in range(max(class_weight) + 1)]
        architecture = replace(self.architecture, loss=loss, optimizer=optimizer, class_weight=class_weight)
        if self.layers and isinstance(self.layers[-1], L.Dense):
            architecture.check_loss()
            architecture = replace(architecture, loss=architecture.implied_loss())
        self.architecture = architecture
        self.metrics = list(metrics)
        return self

    def _ids(self, x, inference=False):
        """Inputs as a list of ragged id arrays (from strings when a vectorizer is first); for
        inference, texts are cut at `inference_length` tokens instead of the training length."""
        if isinstance(x, TokenRows):  # a corpus already vectorized, on disk (`lstmkit.data.corpus`)
            return x
        if self.vectorizer is not None:
            if isinstance(x, str):
                x = [x]
            return self.vectorizer.encode_ragged(list(x), self.inference_length if inference else None)
        if isinstance(x, np.ndarray) and x.ndim == 2:
            # A padded id matrix: the real tokens end at the last non-zero id.
            return [row[: np.flatnonzero(row).max() + 1] if row.any() else row[:0] for row in x.astype(np.int32)]
        return [np.asarray(row, np.int32) for row in x]

    def fit(self, x, y, *, epochs=1, batch_size=64, validation_data=None, seed=0, on_epoch_end=None, **kwargs):
        """Train; returns the history dict (loss, accuracy, val_loss, val_accuracy per epoch).

        Extra options (see `lstmkit.nn.train.fit`): bucket, shuffle_buffer, verbose, progress,
        early_stopping_patience, monitor, adversarial, virtual_adversarial, and initial_epoch, opt_state, history, best
        to continue an interrupted run. on_epoch_end(epoch, model, opt_state, history, best) runs
        after each epoch with this model holding that epoch's weights (checkpoints).
        """
        train.check_ready(self)
        ids, labels, self.class_names, self.input_length = train.training_data(
            self, x, y, kwargs.get("adversarial", 0.0), kwargs.get("virtual_adversarial", 0.0)
        )
        if self.params is None:
            self.build(seed=seed)

        def epoch_done(epoch, params, opt_state, history, best):
            self.params = params
            if on_epoch_end is not None:
                on_epoch_end(epoch, self, opt_state, history, best)

        try:
            self.params, self.opt_state, self.history = train.fit(
                self,
                ids,
                labels,
                self.params,
                epochs=epochs,
                batch_size=batch_size,
                validation_data=validation_data,
                seed=seed,
                on_epoch_end=epoch_done,
                **kwargs,
            )
        except train.FitInterrupted as stop:  # keep usable weights: the last finished step's
            self.params = stop.params
            raise
        return self.history

    def evaluate(self, x, y, *, batch_size=256, return_dict=False):
        """(loss, accuracy) on labelled data, as Keras returns them; a dict with return_dict."""
        result = train.evaluate(self, x, y, batch_size=batch_size)
        return result if return_dict else (result["loss"], result["accuracy"])

    @property
    def temperature(self):
        """The temperature `lstmkit train` fitted on validation (`lstmkit.tasks.calibration`), kept
        in the train config; 1 for a model built in Python or saved before it existed."""
        return float((self.train_config or {}).get("temperature", 1.0))

    def predict(self, x, *, batch_size=256, pad_lengths=None, pad_rows=None, calibrated=True):
        """Probabilities as Keras gives them, which also know each text's label (`Predictions`).

        As an array: (N, 1) for a binary model (the second class's probability), (N, K) for K
        classes. `.labels`: N class names; `.probabilities`: (N, K), every class's, a binary
        model's as [1 - p, p]; `.class_names`: the columns' names. `pad_lengths`, `pad_rows`: the
        lengths and row counts a batch may be padded to, instead of the training ones (a server
        compiles few shapes).
        `calibrated`: divide the logits by the model's `temperature` (False: the network's own
        probabilities); the labels are the same either way.

            >>> p = load_model("runs/m").predict(["What a film."])
            >>> p.labels[0], p.probabilities[0]
            ('pos', array([0.031, 0.969], dtype=float32))
        """
        proba = train.predict(self, x, batch_size=batch_size, pad_lengths=pad_lengths, pad_rows=pad_rows)
        if self.architecture.multi_label:  # K independent sigmoids: no temperature, a threshold each
            return Predictions(proba, self.class_names, self.thresholds)
        if calibrated and self.temperature != 1.0:
            proba = with_temperature(proba, self.temperature).astype(np.float32)
        return Predictions(proba, self.class_names)

    @property
    def thresholds(self):
        """A multi-label model's decision threshold per class (K,) float32, tuned on validation by
        `lstmkit train` and kept in the train config; 0.5 each when none was stored. None for a
        model with one label per text. A stored set that is not one number in (0, 1) per class is
        an LstmkitError."""
        if not self.architecture.multi_label:
            return None
        names = self.class_names or [str(k) for k in range(self.n_outputs)]
        where = f"{self.directory}/config.json" if self.directory else "the train config"
        return stored_thresholds((self.train_config or {}).get("thresholds"), names, where)

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
        if self.ensemble:
            lines.append(
                f"{len(self.members)} members of these layers, their probabilities averaged: {total * len(self.members):,} weights"
            )
        return "\n".join(lines)


def load_model(directory):
    """A `Sequential` from its model directory (see `lstmkit.io.checkpoint`): layers from the
    config, weights by name (every member's, for an ensemble), shapes and checksums verified."""
    directory, config, vectorizer = checkpoint.read_model(directory)
    mc = config["model"]
    try:
        architecture = Architecture([L.layer_from_config(c) for c in mc["layers"]])
        template = jax.eval_shape(architecture.init_params, jax.random.key(0))
    except (KeyError, TypeError, ValueError) as e:  # a config.json edited or written by something else
        raise LstmkitError(
            f"{directory}/config.json describes layers lstmkit cannot build ({type(e).__name__}: {e}); "
            "retrain or restore the model"
        ) from None
    _check_vocabulary(directory, vectorizer, architecture)
    members = [
        checkpoint.load_weights(directory / checkpoint.member_weights(k), template)
        for k in range(checkpoint.n_members(config, directory))
    ]
    if architecture.multi_label:  # checked now, not at the first prediction
        names = mc.get("class_names") or [str(k) for k in range(architecture.n_outputs)]
        stored_thresholds((config.get("train_config") or {}).get("thresholds"), names, f"{directory}/config.json")
    return Sequential(
        architecture.layers,
        class_names=mc.get("class_names"),
        inference_length=mc.get("inference_length"),
        vectorizer=vectorizer,
        params=members[0],
        ensemble=members[1:],
        loss=_saved_loss(architecture, mc.get("loss")),
        train_config=config.get("train_config"),
        directory=directory,
    )


def _check_vocabulary(directory, vectorizer, architecture):
    """A vocabulary larger than the Embedding's table would have its extra words read as other words."""
    embeddings = [layer for layer in architecture.layers if isinstance(layer, L.Embedding)]
    if vectorizer is not None and embeddings and vectorizer.vocab_size > embeddings[0].input_dim:
        raise LstmkitError(
            f"{directory}: its vocabulary has {vectorizer.vocab_size} tokens but its Embedding "
            f"{embeddings[0].input_dim} rows; the vocabulary and weights are from different models"
        )


def _saved_loss(architecture, loss):
    """The loss a saved model was trained with: the one its last layer's width implies. (Before
    compile checked the loss, a K-class model compiled with the then-default binary_crossentropy
    trained with softmax cross-entropy, as its width implied.)"""
    if loss not in LOSSES:
        return None
    last = architecture.layers[-1] if architecture.layers else None
    return architecture.implied_loss() if isinstance(last, L.Dense) else loss
