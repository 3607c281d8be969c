"""Self-training's pseudo-labels: which unlabeled texts are kept, and their hard or soft targets."""

import numpy as np
import pytest

from lstmkit import LstmkitError
from lstmkit.tasks.selftrain import confident, pseudo_labels, with_pseudo_labels


class FixedModel:
    """Stands in for a trained classifier: predicts the given probabilities, whatever the texts."""

    def __init__(self, proba, class_names):
        self.proba, self.class_names = np.asarray(proba, np.float32), class_names

    def predict(self, texts, batch_size=256):
        assert len(texts) == len(self.proba)
        return self.proba


def test_confident_keeps_texts_whose_predicted_class_reaches_the_threshold():
    keep, predicted = confident(np.array([[0.95], [0.5], [0.08], [0.7]]), 0.9)
    assert keep.tolist() == [True, False, True, False] and predicted.tolist() == [1, 1, 0, 1]
    keep, predicted = confident(np.array([[0.1, 0.85, 0.05], [0.4, 0.3, 0.3]]), 0.8)
    assert keep.tolist() == [True, False] and predicted.tolist() == [1, 0]


def test_hard_pseudo_labels_are_the_predicted_classes_of_the_kept():
    model = FixedModel([[0.95], [0.6], [0.02], [0.91]], ["neg", "pos"])
    index, labels, stats = pseudo_labels(model, ["a", "b", "c", "d"], 0.9)
    assert index.tolist() == [0, 2, 3] and labels.tolist() == [1, 0, 1] and labels.dtype == np.int32
    assert stats == {"unlabeled": 4, "kept": 3, "per_class": {"neg": 1, "pos": 2}}


def test_soft_pseudo_labels_are_the_probabilities_of_the_kept():
    model = FixedModel([[0.95], [0.6], [0.02], [0.91]], ["neg", "pos"])
    index, labels, stats = pseudo_labels(model, ["a", "b", "c", "d"], 0.9, soft=True)
    assert index.tolist() == [0, 2, 3] and labels.dtype == np.float32
    np.testing.assert_allclose(labels, [0.95, 0.02, 0.91])
    assert stats["per_class"] == {"neg": 1, "pos": 2}
    index, labels, _ = pseudo_labels(model, ["a", "b", "c", "d"], 0.5, soft=True)  # 0.5 keeps every text
    assert index.tolist() == [0, 1, 2, 3]
    three = FixedModel([[0.1, 0.8, 0.1], [0.3, 0.3, 0.4]], ["a", "b", "c"])
    index, labels, stats = pseudo_labels(three, ["x", "y"], 0.5, soft=True)
    assert index.tolist() == [0] and labels.shape == (1, 3)
    np.testing.assert_allclose(labels[0], [0.1, 0.8, 0.1])
    with pytest.raises(LstmkitError, match="--pseudo-confidence must be in"):
        pseudo_labels(model, ["a", "b", "c", "d"], 1.0)


def test_with_pseudo_labels_makes_one_target_array():
    hard = with_pseudo_labels(np.array([0, 1]), np.array([1, 1], np.int32), 2)
    assert hard.tolist() == [0, 1, 1, 1] and hard.dtype == np.int32
    soft = with_pseudo_labels(np.array([0, 1]), np.array([0.25], np.float32), 2)
    assert soft.dtype == np.float32 and soft.tolist() == [0.0, 1.0, 0.25]
    many = with_pseudo_labels(np.array([2, 0]), np.array([[0.2, 0.5, 0.3]], np.float32), 3)
    np.testing.assert_allclose(many, [[0, 0, 1], [1, 0, 0], [0.2, 0.5, 0.3]])
