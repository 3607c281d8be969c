"""The jobs on a saved model: its metrics on labelled data, and its predictions as rows.

This is what `lstmkit evaluate` and `lstmkit predict` run; the numerics are `lstmkit.nn.model`'s.
"""

from __future__ import annotations

import numpy as np

from lstmkit.data.multilabel import match_labels
from lstmkit.data.sources import load_source
from lstmkit.errors import LstmkitError
from lstmkit.nn.model import load_model
from lstmkit.tasks.calibration import calibration_report, with_temperature
from lstmkit.tasks.metrics import classification_report
from lstmkit.tasks.multilabel import multilabel_report, prediction_rows


def evaluate_run(
    model_dir,
    data,
    *,
    split="test",
    text_column=None,
    label_column=None,
    batch_size=256,
    positive_class=None,
    file_format=None,
    header=None,
):
    """Metrics of a saved model on a labelled source, its labels mapped through the model's classes
    (a subset of them is fine; a class the model does not know is an error). A multi-label model
    reads the data's labels as sets and gives `lstmkit.tasks.multilabel.multilabel_report`."""
    model = load_model(model_dir)
    multi = model.architecture.multi_label
    reading = {"text_column": text_column, "label_column": label_column, "file_format": file_format, "header": header}
    ds = load_source(data, split, **reading, min_classes=1, multi_label=True if multi else None)
    ds = match_labels(ds, model.class_names, multi, what=str(data))
    if multi:
        if positive_class is not None:
            raise LstmkitError(
                "--positive-class is for a model with two classes; a multi-label model scores every label"
            )
        proba = model.predict(ds.texts, batch_size=batch_size)
        return multilabel_report(ds.labels, proba, model.thresholds, model.class_names)
    raw, temperature = model.predict(ds.texts, batch_size=batch_size, calibrated=False), model.temperature
    m = classification_report(
        ds.labels, with_temperature(raw, temperature), model.class_names, positive_class=positive_class
    )
    m["calibration"] = calibration_report(raw, ds.labels, temperature, bins=True)
    return m


def check_threshold(model, threshold, where="the model"):
    """Refuse a decision threshold outside (0, 1), or one given for a model with more than two
    classes and one label per text (a multi-label model takes it for every label)."""
    if threshold is None:
        return
    if not 0.0 < threshold < 1.0:
        raise LstmkitError(f"--threshold must be between 0 and 1 (exclusive), got {threshold}; e.g. --threshold 0.7")
    if model.architecture.multi_label:
        return
    names = model.class_names or []
    if len(names) != 2:
        raise LstmkitError(
            f"--threshold is for a model with two classes; {where} has {len(names)} ({', '.join(map(str, names))}), "
            "whose label is the likeliest class: leave --threshold out (--top-k shows the others)"
        )


def predict_texts(model, texts, batch_size=256, *, top_k=0, threshold=None):
    """[{"text", "label", "probability"}] per text; probability is that of the predicted label,
    calibrated by the model's temperature (as `Sequential.predict` gives it).

    top_k: also "top_k", the K likeliest classes as [{"label", "probability"}], most likely first
    (a binary model's two classes are 1 - p and p).
    threshold: a binary model predicts its second class when p >= threshold (None: 0.5, as
    `Predictions.labels`); see `check_threshold`.
    A multi-label model's rows are `lstmkit.tasks.multilabel.prediction_rows`: {"text", "labels",
    "probabilities"}, each label whose probability reaches its stored threshold (or `threshold`).
    """
    check_threshold(model, threshold)
    cut = 0.5 if threshold is None else threshold
    predicted = model.predict(list(texts), batch_size=batch_size)
    if predicted.multi_label:
        return prediction_rows(predicted, texts, thresholds=threshold, top_k=top_k)
    binary = predicted.shape[-1] == 1
    proba = predicted.probabilities  # (N, K); a binary model's as [1 - p, p]
    out = []
    for text, p in zip(texts, proba):
        k = int(p[1] >= cut) if binary else int(np.argmax(p))
        row = {"text": text, "label": model.class_names[k], "probability": float(p[k])}
        if top_k:
            order = np.argsort(-p, kind="stable")[:top_k]
            row["top_k"] = [{"label": model.class_names[j], "probability": float(p[j])} for j in order]
        out.append(row)
    return out
