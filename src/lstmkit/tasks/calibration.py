"""Calibrated probabilities: temperature scaling fitted on validation, and the expected calibration error.

A network trained to a low loss is often over-confident: of the texts it labels with probability
0.95, fewer than 95% are right. Temperature scaling (Guo et al. 2017, "On Calibration of Modern
Neural Networks") divides the logits z by one number T > 0 fitted on validation,

    p_T = softmax(z / T)        (binary: sigmoid(z / T)),

T minimising the validation log loss. T > 1 softens over-confident probabilities, T < 1 sharpens
timid ones. The ranking and the predicted class stay the same (z / T keeps the argmax and the sign
of a binary logit), so accuracy, F1 and AUCs do not move; only the probabilities do.

The expected calibration error (ECE) bins the texts by their confidence (the predicted class's
probability) into M equal-width bins B_m and sums the gaps between accuracy and confidence,

    ECE = sum_m |B_m| / N * |acc(B_m) - conf(B_m)|.

Shapes: N texts, K classes; probabilities are (N, 1) (binary, P(class 1)) or (N, K), as
`Sequential.predict` returns them.

>>> p = np.array([[0.9], [0.9], [0.9], [0.9], [0.1]])
>>> round(expected_calibration_error(p, np.array([1, 1, 0, 0, 0])), 3)   # all say 0.9; 3 of 5 are right
0.3
"""

from __future__ import annotations

import numpy as np

# The temperature's arithmetic lives with the probabilities it changes (`Sequential.predict`
# applies the model's own); it is re-exported here, where the temperature is fitted.
from lstmkit.nn.predictions import EPS, logits, with_temperature

__all__ = [
    "EPS",
    "calibration_report",
    "confidence_and_hits",
    "describe",
    "expected_calibration_error",
    "fit_temperature",
    "log_loss",
    "logits",
    "reliability_bins",
    "with_temperature",
]


def log_loss(proba, labels):
    """Mean negative log-likelihood of the true classes."""
    return float(-np.mean(np.log(np.clip(_true_class_proba(proba, labels), EPS, 1.0))))


def fit_temperature(proba, labels, *, low=0.05, high=20.0, steps=60):
    """The T in [low, high] minimising the log loss of `with_temperature(proba, T)` on (proba, labels).

    The loss is convex in 1 / T (a log-sum-exp less a linear term), so a golden-section search on
    log T finds it; 60 steps narrow the bracket by 0.618^60, far below any useful digit.
    """
    a, b = np.log(low), np.log(high)
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    loss_c, loss_d = (log_loss(with_temperature(proba, np.exp(x)), labels) for x in (c, d))
    for _ in range(steps):
        if loss_c <= loss_d:
            b, d, loss_d = d, c, loss_c
            c = b - ratio * (b - a)
            loss_c = log_loss(with_temperature(proba, np.exp(c)), labels)
        else:
            a, c, loss_c = c, d, loss_d
            d = a + ratio * (b - a)
            loss_d = log_loss(with_temperature(proba, np.exp(d)), labels)
    return float(np.exp((a + b) / 2.0))


def confidence_and_hits(proba, labels):
    """(confidence (N,): the predicted class's probability, hits (N,): whether it is the true class)."""
    p = np.asarray(proba, np.float64)
    labels = np.asarray(labels)
    if p.shape[-1] == 1:
        p1 = p[:, 0]
        predicted = (p1 >= 0.5).astype(np.int64)
        return np.where(predicted == 1, p1, 1.0 - p1), predicted == labels
    return p.max(axis=-1), p.argmax(axis=-1) == labels


def reliability_bins(proba, labels, bins=15):
    """Per equal-width confidence bin over [0, 1]: its mean confidence, accuracy and count (empty bins: NaN, 0)."""
    confidence, hits = confidence_and_hits(proba, labels)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_confidence = np.bincount(which, confidence, bins) / count
        accuracy = np.bincount(which, hits.astype(np.float64), bins) / count
    return {"confidence": mean_confidence, "accuracy": accuracy, "count": count}


def expected_calibration_error(proba, labels, bins=15):
    """ECE over `bins` equal-width confidence bins (see the module's docstring); 0 is perfect."""
    b = reliability_bins(proba, labels, bins)
    used = b["count"] > 0
    gaps = np.abs(b["accuracy"][used] - b["confidence"][used])
    return float(np.sum(b["count"][used] * gaps) / max(b["count"].sum(), 1))


def calibration_report(proba, labels, temperature, *, bins=False):
    """ECE and log loss before and after dividing the logits by `temperature`, as a JSON-ready dict;
    with bins, also the reliability diagram's bins before ("raw") and after ("calibrated"), an
    empty bin's confidence and accuracy None (JSON has no NaN)."""
    after = with_temperature(proba, temperature)
    report = {
        "temperature": float(temperature),
        "ece": expected_calibration_error(proba, labels),
        "ece_calibrated": expected_calibration_error(after, labels),
        "log_loss": log_loss(proba, labels),
        "log_loss_calibrated": log_loss(after, labels),
    }
    if bins:
        report["bins"] = {
            name: {
                key: [None if v != v else v for v in values.tolist()]
                for key, values in reliability_bins(p, labels).items()
            }
            for name, p in (("raw", proba), ("calibrated", after))
        }
    return report


def describe(report):
    """One line: the temperature, and the ECE and log loss before -> after."""
    return (
        f"temperature {report['temperature']:.3f}; ECE {report['ece']:.4f} -> {report['ece_calibrated']:.4f}, "
        f"log loss {report['log_loss']:.4f} -> {report['log_loss_calibrated']:.4f}"
    )


def _true_class_proba(proba, labels):
    p = np.asarray(proba, np.float64)
    labels = np.asarray(labels)
    if p.shape[-1] == 1:
        return np.where(labels == 1, p[:, 0], 1.0 - p[:, 0])
    return p[np.arange(len(labels)), labels]
