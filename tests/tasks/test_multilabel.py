"""Multi-label numerics against outside references: the metrics against scikit-learn's, each tuned
threshold against every other threshold's F1, the loss against NumPy's binary cross-entropy, and
label sets from probabilities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, hamming_loss, precision_recall_fscore_support

from lstmkit.errors import LstmkitError
from lstmkit.nn.architecture import Architecture
from lstmkit.nn.layers import Dense, Embedding, GlobalMaxPool
from lstmkit.nn.predictions import Predictions
from lstmkit.tasks.multilabel import best_threshold, check_config, multilabel_report, tune_thresholds


def _problem(seed, n=300, k=4):
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, k)) < [0.5, 0.3, 0.1, 0.0][:k]).astype(np.int64)
    proba = np.clip(0.35 * truth + 0.65 * rng.random((n, k)), 0, 1).astype(np.float32)
    return truth, proba


def test_report_equals_scikit_learn():
    truth, proba = _problem(0)
    thresholds = np.array([0.5, 0.4, 0.6, 0.5], np.float32)
    predicted = (proba >= thresholds).astype(int)
    m = multilabel_report(truth, proba, thresholds, ["a", "b", "c", "d"])
    p, r, f, s = precision_recall_fscore_support(truth, predicted, average=None, zero_division=0)
    for k, name in enumerate("abcd"):
        got = m["per_class"][name]
        assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx((p[k], r[k], f[k], s[k]))
    for average in ("micro", "macro"):
        p, r, f, _ = precision_recall_fscore_support(truth, predicted, average=average, zero_division=0)
        assert (m[average]["precision"], m[average]["recall"], m[average]["f1"]) == pytest.approx((p, r, f))
    assert m["f1"] == pytest.approx(f1_score(truth, predicted, average="micro"))
    assert m["subset_accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert m["hamming_loss"] == pytest.approx(hamming_loss(truth, predicted))
    assert m["per_class"]["d"]["support"] == 0 and m["per_class"]["d"]["f1"] == 0.0


def test_each_tuned_threshold_has_the_best_f1_on_its_data():
    truth, proba = _problem(1)
    thresholds = tune_thresholds(proba, truth)
    for k in range(3):
        best = f1_score(truth[:, k], proba[:, k] >= thresholds[k])
        every = [f1_score(truth[:, k], proba[:, k] >= t) for t in np.unique(proba[:, k])]
        assert best == pytest.approx(max(every)), k
        assert 0 < thresholds[k] < 1 and not np.any(proba[:, k] == thresholds[k])  # between scores
    assert thresholds[3] == 0.5  # label d has no positive example: nothing to tune


def test_best_threshold_separates_perfectly_separable_scores():
    t = best_threshold(np.array([0.95, 0.8, 0.3, 0.2, 0.1]), np.array([1, 1, 0, 0, 0]))
    assert 0.3 < t < 0.8


def test_loss_is_binary_cross_entropy_averaged_over_labels():
    arch = Architecture([Embedding(20, 4, mask_zero=True), GlobalMaxPool(), Dense(3, "sigmoid")])
    assert arch.multi_label and arch.implied_loss() == "binary_crossentropy"
    params = arch.init_params(jax.random.key(0))
    ids = jnp.array([[3, 4, 5, 0], [7, 8, 0, 0]], jnp.int32)
    labels = jnp.array([[1, 0, 1], [0, 0, 0]], jnp.int32)
    loss, correct = arch.loss_fn(params, ids, labels, jnp.ones(2))
    p = np.asarray(arch.apply(params, ids), np.float64)
    y = np.asarray(labels)
    expected = np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(correct) == np.sum(np.all((p >= 0.5) == (y == 1), axis=1))


def test_class_weight_and_self_training_are_refused_for_label_sets():
    with pytest.raises(LstmkitError, match="drop --class-weight"):
        check_config({"class_weight": "balanced"})
    with pytest.raises(LstmkitError, match="--self-training 0"):
        check_config({"class_weight": "none", "self_training": 1})
    assert check_config({"class_weight": "none"})["multi_label"] is True


def test_predictions_give_label_sets_at_their_thresholds():
    p = Predictions(np.array([[0.9, 0.2, 0.55], [0.1, 0.6, 0.4]], np.float32), ["a", "b", "c"], [0.5, 0.7, 0.5])
    assert p.multi_label and p.labels == [["a", "c"], []]
    assert p.label_sets(0.3) == [["a", "c"], ["b", "c"]]
    assert p[1:].labels == [[]]  # a slice of rows keeps its thresholds
    assert p.probabilities.shape == (2, 3)
