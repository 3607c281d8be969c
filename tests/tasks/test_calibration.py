"""Temperature scaling and the expected calibration error, on probabilities whose calibration is
known because the labels were drawn from them."""

import numpy as np
import pytest

from lstmkit.tasks.calibration import (
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    log_loss,
    with_temperature,
)


def _overconfident_binary(true_temperature, n=4000, seed=0):
    """Labels drawn from sigmoid(z / T): the model's sigmoid(z) is over-confident by T."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 3.0, n)
    labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-z / true_temperature))).astype(np.int64)
    return (1.0 / (1.0 + np.exp(-z)))[:, None], labels


def test_fit_temperature_recovers_the_one_the_labels_were_drawn_with():
    proba, labels = _overconfident_binary(2.5)
    assert fit_temperature(proba, labels) == pytest.approx(2.5, rel=0.1)
    rng = np.random.default_rng(1)  # four classes, timid by T = 0.5
    z = rng.normal(0.0, 2.0, (4000, 4))
    sharp = np.exp(z / 0.5) / np.exp(z / 0.5).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(4, p=row) for row in sharp])
    proba = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert fit_temperature(proba, labels) == pytest.approx(0.5, rel=0.1)


def test_scaling_lowers_the_error_and_keeps_every_decision():
    proba, labels = _overconfident_binary(2.5, seed=2)
    report = calibration_report(proba, labels, fit_temperature(proba, labels))
    assert report["ece_calibrated"] < report["ece"] / 2 and report["log_loss_calibrated"] < report["log_loss"]
    scaled = with_temperature(proba, 2.5)
    assert np.array_equal(scaled >= 0.5, proba >= 0.5)
    multi = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    assert np.array_equal(with_temperature(multi, 3.0).argmax(1), [0, 2])
    assert np.allclose(with_temperature(multi, 3.0).sum(1), 1.0)
    assert np.array_equal(with_temperature(multi, 1.0), multi)  # no temperature: the model's own numbers


def test_expected_calibration_error_worked_examples():
    # all say 0.9 and 3 of 5 are right: one bin, |0.6 - 0.9|
    p = np.array([[0.9], [0.9], [0.9], [0.9], [0.1]])
    assert expected_calibration_error(p, np.array([1, 1, 0, 0, 0])) == pytest.approx(0.3)
    # 70% confident and 70% right; 100% confident and right: calibrated
    p = np.array([[0.7]] * 10 + [[1.0]] * 5)
    y = np.array([1] * 7 + [0] * 3 + [1] * 5)
    assert expected_calibration_error(p, y) == pytest.approx(0.0, abs=1e-12)
    assert log_loss(np.array([[0.5], [0.5]]), np.array([0, 1])) == pytest.approx(np.log(2))
