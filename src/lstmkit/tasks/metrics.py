"""Classification metrics from labels and predicted probabilities, in NumPy.

Always: accuracy, precision/recall/F1 and support per class (by name), their macro average
(every class alike) and weighted average (by support), and the K x K confusion matrix. Binary
tasks name their positive class (default the second, the one a sigmoid scores): the top-level
precision, recall, F1, ROC AUC and PR AUC are that class's. Multi-class: the top-level three are
the macro averages, and "average" says so.
"""

from __future__ import annotations

import numpy as np

from lstmkit.errors import LstmkitError


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


def pr_auc(y_true, score):
    """Area under the precision-recall curve, as average precision: sum over thresholds t of
    (R(t) - R(t_prev)) P(t), thresholds at each distinct score from high to low.

    Unlike ROC AUC it starts from the positives, so a rare class that is ranked badly shows: a
    random ranking scores the positives' share, not 0.5. NaN without positives.

    >>> pr_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])   # (1/2) 1 + (1/2) (2/3)
    0.8333333333333333
    """
    y_true = np.asarray(y_true).astype(bool)
    n_pos = int(y_true.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-np.asarray(score, np.float64), kind="mergesort")
    sorted_score, hits = np.asarray(score, np.float64)[order], y_true[order]
    last_of_tie = np.r_[sorted_score[1:] != sorted_score[:-1], True]  # tied scores are one threshold
    true_pos = np.cumsum(hits)[last_of_tie]
    predicted = np.arange(1, len(hits) + 1)[last_of_tie]
    precision_sum = np.sum(np.diff(np.r_[0, true_pos]) * (true_pos / predicted))  # divided by n_pos once:
    return min(1.0, float(precision_sum / n_pos))  # a perfect ranking is 1.0, not 1.0000000000000002


def _safe_div(a, b):
    return float(a / b) if b else 0.0


def classification_report(y_true, proba, class_names, positive_class=None):
    """All metrics as a JSON-ready dict; proba is (N, 1) or (N,) for binary, (N, K) otherwise.

    positive_class: for two classes, the name whose precision, recall, F1 and ROC AUC are the
    headline ones (default class_names[1]).
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, np.float64)
    K = len(class_names)
    if K == 2:
        p1 = proba.reshape(len(y_true), -1)[:, -1]
        y_pred = (p1 >= 0.5).astype(np.int64)
    else:
        y_pred = proba.argmax(-1)
    cm = confusion_matrix(y_true, y_pred, K)
    support = cm.sum(axis=1)
    precision = [_safe_div(cm[k, k], cm[:, k].sum()) for k in range(K)]
    recall = [_safe_div(cm[k, k], support[k]) for k in range(K)]
    f1 = [_safe_div(2 * p * r, p + r) for p, r in zip(precision, recall)]
    per_class = {
        name: {"precision": precision[k], "recall": recall[k], "f1": f1[k], "support": int(support[k])}
        for k, name in enumerate(class_names)
    }
    weights = support / max(support.sum(), 1)
    out = {
        "n": len(y_true),
        "accuracy": _safe_div(np.trace(cm), cm.sum()),
        "per_class": per_class,
        "macro": {m: float(np.mean(v)) for m, v in (("precision", precision), ("recall", recall), ("f1", f1))},
        "weighted": {
            m: float(np.dot(weights, v)) for m, v in (("precision", precision), ("recall", recall), ("f1", f1))
        },
    }
    if K == 2:
        positive = class_names[1] if positive_class is None else positive_class
        if positive not in class_names:
            raise LstmkitError(
                f"--positive-class {positive!r} is not one of the model's classes ({', '.join(class_names)})"
            )
        k = list(class_names).index(positive)
        score = p1 if k == 1 else 1.0 - p1
        out.update(positive_class=positive, precision=precision[k], recall=recall[k], f1=f1[k])
        out["roc_auc"] = roc_auc(y_true == k, score)
        out["pr_auc"] = pr_auc(y_true == k, score)
    else:
        out.update(average="macro", **out["macro"])
    out.update(class_names=list(class_names), confusion_matrix=cm.tolist())
    return out
