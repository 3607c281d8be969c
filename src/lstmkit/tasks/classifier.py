"""The classifier a configuration describes: vectorizer, Embedding, (Bi)LSTM layers, pooling, Dense head,
optimizer, and the loss's class weights."""

from __future__ import annotations

import numpy as np

from lstmkit.data.text import TextVectorizer
from lstmkit.errors import LstmkitError
from lstmkit.nn import layers as L
from lstmkit.nn.model import Sequential
from lstmkit.nn.optim import OptimizerSettings
from lstmkit.tasks import multilabel
from lstmkit.tasks.presets import parse_class_weight


def build_model(config, n_classes, steps_per_epoch=None, *, class_names=None, vectorizer=None):
    """The compiled classifier a config describes: vectorizer, embedding, (Bi)LSTM, pooling, dense.

    steps_per_epoch sizes the learning-rate schedule (needed for "cosine"). class_names: the
    classes' names; vectorizer: one to use (a resumed run's) instead of a new, unadapted one.
    """
    if vectorizer is None:
        vectorizer = _vectorizer(config)
    model = Sequential(
        class_names=class_names, inference_length=config.get("inference_length") or None, vectorizer=vectorizer
    )
    _add_embedding(model, config)
    _add_lstm_layers(model, config)
    _add_head(model, config, n_classes)
    binary = n_classes == 2 or bool(config.get("multi_label"))  # multi-label: binary cross-entropy per label
    weights = config.get("class_weights")  # resolved by with_class_weights; absent from runs saved before it existed
    model.compile(
        optimizer=_optimizer(config, steps_per_epoch),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        class_weight=[weights[name] for name in class_names] if weights and class_names else None,
    )
    return model


def _vectorizer(config):
    standardize = None if config["standardize"] == "none" else config["standardize"]
    return TextVectorizer(
        max_tokens=config["max_tokens"],
        standardize=standardize,
        output_sequence_length=config["sequence_length"],
        strip_html=config["strip_html"],
    )


def _add_embedding(model, config):
    """Word dropout, the Embedding (with its word-pair vectors), and dropout of whole vectors."""
    if config.get("word_dropout"):
        model.add(L.WordDropout(config["word_dropout"]))
    bigrams = config.get("bigram_buckets", 0)  # absent from runs saved before it existed
    pair_dropout = config.get("bigram_dropout", 0.0) if bigrams else 0.0
    model.add(
        L.Embedding(
            config["max_tokens"],
            config["embedding_dim"],
            mask_zero=True,
            bigram_buckets=bigrams,
            bigram_dropout=pair_dropout,
        )
    )
    if config["embedding_dropout"]:
        model.add(L.SpatialDropout1D(config["embedding_dropout"]))


def _add_lstm_layers(model, config):
    """The (Bi)LSTM layers, dropout between them, and the pooling over time unless "last"."""
    pooled = config["pooling"] != "last"
    for n in range(config["lstm_layers"]):
        last = n == config["lstm_layers"] - 1
        lstm = L.LSTM(config["lstm_units"], return_sequences=pooled or not last, init=config["init"])
        model.add(L.Bidirectional(lstm) if config["bidirectional"] else lstm)
        if not last and config["dropout"]:
            model.add(L.Dropout(config["dropout"]))
    if pooled:
        model.add(L.POOLINGS[config["pooling"]]())


def _add_head(model, config, n_classes):
    """Dropout, the hidden Dense layer, and the output: 1 sigmoid unit for two classes, else K
    softmax; a multi-label config ("multi_label") K sigmoids, one per label."""
    if config["dropout"]:
        model.add(L.Dropout(config["dropout"]))
    if config["dense_units"]:
        model.add(L.Dense(config["dense_units"], activation="relu"))
        if config["dropout"]:
            model.add(L.Dropout(config["dropout"]))
    if config.get("multi_label"):  # absent from runs saved before it existed
        model.add(L.Dense(n_classes, activation="sigmoid"))
        return
    binary = n_classes == 2
    model.add(L.Dense(1 if binary else n_classes, activation="sigmoid" if binary else "softmax"))


def _optimizer(config, steps_per_epoch):
    """The optimizer settings; steps_per_epoch x epochs is the schedule's length."""
    total_steps = steps_per_epoch * config["epochs"] if steps_per_epoch else None
    return OptimizerSettings(
        config["optimizer"],
        config["learning_rate"],
        clipnorm=config["clipnorm"] or None,
        weight_decay=config["weight_decay"],
        schedule=config["schedule"],
        total_steps=total_steps,
        warmup_steps=config["warmup_steps"],
        average=config.get("weight_average", 0.0),  # absent from runs saved before it existed
        table_updates=config.get("table_updates", "dense"),  # the same
    )


def with_class_weights(config, labels, class_names, *, verbose=True):
    """The config with "class_weights", {class name: weight}, resolved from --class-weight on the
    training labels (None for "none"); the model directory keeps both.

    balanced: w_k = N / (K n_k), so every class weighs as much in the loss as the others (N
    examples, K classes, n_k of class k; a class with none gets 1). A JSON object names some
    classes; the others weigh 1. Multi-label labels (N, K) give a config with "multi_label": True
    and no class weights (`lstmkit.tasks.multilabel.check_config`).

    >>> with_class_weights({"class_weight": "balanced"}, np.array([0, 0, 0, 1]), ["a", "b"], verbose=False)["class_weights"]
    {'a': 0.6666666666666666, 'b': 2.0}
    """
    if np.ndim(labels) == 2:
        return multilabel.check_config(config)
    setting = parse_class_weight(config.get("class_weight", "none"))
    if setting == "none":
        return {**config, "class_weights": None}
    if setting == "balanced":
        known = np.asarray(labels)[np.asarray(labels) >= 0]  # unlabeled examples (-1) weigh nothing here
        counts = np.bincount(known, minlength=len(class_names))
        weights = {n: float(len(known) / (len(class_names) * c)) if c else 1.0 for n, c in zip(class_names, counts)}
    else:
        unknown = [name for name in setting if name not in class_names]
        if unknown:
            raise LstmkitError(
                f"--class-weight names class {unknown[0]!r}, which the training data does not have (its classes: {', '.join(class_names)})"
            )
        weights = {name: setting.get(name, 1.0) for name in class_names}
    if verbose:
        print("class weights: " + ", ".join(f"{n} {w:.3g}" for n, w in weights.items()), flush=True)
    return {**config, "class_weights": weights}
