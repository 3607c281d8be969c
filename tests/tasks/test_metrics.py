"""Metrics that say which class they are of: per class, labelled averages, the positive class."""

import numpy as np
import pytest

from lstmkit.data.dataset import Dataset
from lstmkit.data.sources import load_splits
from lstmkit.errors import LstmkitError
from lstmkit.tasks.metrics import classification_report


def test_all_majority_predictions_do_not_hide_behind_the_majority_classs_f1():
    """95/5 with every prediction the majority: the headline F1 was the majority's 0.97, unnamed."""
    y = np.array([0] * 5 + [1] * 95)
    proba = np.full((100, 1), 0.9)
    m = classification_report(y, proba, ["rare", "common"])
    assert m["positive_class"] == "common" and m["f1"] == pytest.approx(2 * 0.95 / 1.95)
    assert m["per_class"]["rare"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 5}
    assert m["macro"]["f1"] == pytest.approx((0.0 + 2 * 0.95 / 1.95) / 2)
    assert m["weighted"]["f1"] == pytest.approx(0.95 * 2 * 0.95 / 1.95)
    rare = classification_report(y, proba, ["rare", "common"], positive_class="rare")
    assert rare["positive_class"] == "rare" and rare["f1"] == 0.0 and rare["recall"] == 0.0
    with pytest.raises(LstmkitError, match="not one of the model's classes"):
        classification_report(y, proba, ["rare", "common"], positive_class="other")


def test_roc_auc_of_either_class_and_macro_average_for_many_classes():
    y = np.array([0, 0, 1, 1, 1])
    p = np.array([[0.1], [0.6], [0.4], [0.8], [0.9]])
    auc = 5 / 6  # of the 6 (positive, negative) pairs, 5 are ordered right: 0.4 < 0.6 is the one
    assert classification_report(y, p, ["a", "b"])["roc_auc"] == pytest.approx(auc)
    assert classification_report(y, p, ["a", "b"], positive_class="a")["roc_auc"] == pytest.approx(auc)
    y3 = np.array([0, 1, 2, 2])
    p3 = np.eye(3)[[0, 2, 2, 1]]
    m = classification_report(y3, p3, ["x", "y", "z"])
    assert m["average"] == "macro" and "positive_class" not in m
    assert m["f1"] == pytest.approx(np.mean([1.0, 0.0, 2 * 0.5 * 0.5 / 1.0]))


def test_test_data_labels_follow_the_training_classes(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\n" + "".join(f"t{i},{c}\n" for i in range(6) for c in "abc"))
    (tmp_path / "test.csv").write_text("text,label\nx,b\ny,c\nz,c\n")
    train, test = load_splits(tmp_path / "train.csv", test_data=tmp_path / "test.csv")
    assert train.class_names == test.class_names == ["a", "b", "c"]
    assert sorted(zip(test.texts, test.labels.tolist())) == [("x", 1), ("y", 2), ("z", 2)]
    (tmp_path / "odd.csv").write_text("text,label\nx,b\ny,d\n")
    with pytest.raises(LstmkitError, match="has class 'd', which the training data does not know"):
        load_splits(tmp_path / "train.csv", test_data=tmp_path / "odd.csv")
    assert Dataset(["u"], np.array([-1]), ["b"]).relabeled(["a", "b"]).labels.tolist() == [-1]
