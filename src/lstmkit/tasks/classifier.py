"""The classifier a configuration describes: vectorizer, Embedding, (Bi)LSTM layers, pooling, Dense head, optimizer."""

from __future__ import annotations

from lstmkit.data.text import TextVectorizer
from lstmkit.nn import layers as L
from lstmkit.nn.model import Sequential
from lstmkit.nn.optim import OptimizerSettings


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
    binary = n_classes == 2
    model.compile(
        optimizer=_optimizer(config, steps_per_epoch),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
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
    """Dropout, the hidden Dense layer, and the output: 1 sigmoid unit for two classes, else K softmax."""
    if config["dropout"]:
        model.add(L.Dropout(config["dropout"]))
    if config["dense_units"]:
        model.add(L.Dense(config["dense_units"], activation="relu"))
        if config["dropout"]:
            model.add(L.Dropout(config["dropout"]))
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
    )
