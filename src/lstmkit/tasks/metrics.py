"""Classification metrics from labels and predicted probabilities, in NumPy.

Binary: accuracy, precision, recall, F1 (of the positive class, index 1), ROC AUC and the 2x2
confusion matrix. Multi-class: accuracy, macro precision/recall/F1 and the K x K confusion matrix.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true, y_pred, n_classes):
    """Counts (K, K): row = true class, column = predicted class."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def roc_auc(y_true, score):
    """Area under the ROC curve: the chance that a random positive scores above a random negative.

    Computed from ranks (Mann-Whitney U), ties counted as one half. NaN if one class is absent.
    """
    y_true = np.asarray(y_true).astype(bool)
    n_pos, n_neg = y_true.sum(), (~y_true).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    sorted_score = np.asarray(score)[order]
    ranks = np.empty(len(score), np.float64)
    # Average the ranks of tied scores.
    _, first, counts = np.unique(sorted_score, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y_true].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _safe_div(a, b):
    return float(a / b) if b else 0.0


def classification_report(y_true, proba, class_names):
    """All metrics as a JSON-ready dict; proba is (N, 1) or (N,) for binary, (N, K) otherwise."""
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, np.float64)
    K = len(class_names)
    if K == 2:
        p1 = proba.reshape(len(y_true), -1)[:, -1]
        y_pred = (p1 >= 0.5).astype(np.int64)
    else:
        y_pred = proba.argmax(-1)
    cm = confusion_matrix(y_true, y_pred, K)
    out = {"n": len(y_true), "accuracy": _safe_div(np.trace(cm), cm.sum())}
    precision = [_safe_div(cm[k, k], cm[:, k].sum()) for k in range(K)]
    recall = [_safe_div(cm[k, k], cm[k, :].sum()) for k in range(K)]
    f1 = [_safe_div(2 * p * r, p + r) for p, r in zip(precision, recall)]
    if K == 2:
        out.update(precision=precision[1], recall=recall[1], f1=f1[1], roc_auc=roc_auc(y_true, p1))
    else:
        out.update(precision=float(np.mean(precision)), recall=float(np.mean(recall)), f1=float(np.mean(f1)))
    out.update(class_names=list(class_names), confusion_matrix=cm.tolist())
    return out
