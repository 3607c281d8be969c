"""Self-training: a trained classifier labels unlabeled text, and a fresh one learns from both.

The classic semi-supervised recipe (Scudder 1965, Yarowsky 1995; "pseudo-labels", Lee 2013):

    round 0   train a teacher on the labeled texts (validating on the held-out split);
    round r   the teacher predicts every unlabeled text; those whose predicted class has
              probability >= confidence keep that class as their label ("pseudo-labels"), or,
              with soft labels, the teacher's probabilities (distillation, Hinton et al. 2015);
              a fresh student, with its own vocabulary, trains on the labeled texts plus the
              pseudo-labeled ones, validating on the same held-out split; it is the next teacher.

Soft labels (`--pseudo-labels soft`) carry what the teacher knows and how sure it is: a review it
calls 70% positive teaches 0.7, not 1, so its mistakes cost the student less and no threshold is
needed (`--pseudo-confidence 0.5` keeps every text of a two-class task). The cross-entropy
against a soft target is `-p log q - (1 - p) log(1 - q)` (`Sequential.loss_fn`); the labeled
texts keep their 0 and 1.

The student need not copy the teacher: `--student KEY=VALUE` gives the students their own size,
input and regularisation (`presets.STUDENT_KEYS`). A student learns from about 2.5x the teacher's
texts, so it can use a larger model: on IMDB a BiLSTM(128) student of a BiLSTM(64) teacher (the
`best` preset) scored better on validation than a BiLSTM(64) student for seed 0, though not for
seed 1, where on the labeled texts alone a BiLSTM(128) did not beat a BiLSTM(64) (docs/accuracy.md;
"Noisy Student", Xie et al. 2020, makes the point for images: an equal or larger, noised student).

Why it helps an LSTM classifier: the labeled data is small, and much of what the model learns
from it is specific to its documents (on IMDB: the movies, actors and plots of the 25,000 train
reviews, which the test reviews do not share). Confident pseudo-labels on other documents teach
the same sentiment words in new company, and enlarge the vocabulary with words seen there. The
confident labels are mostly right (checked on the validation split, see `pseudo_label_accuracy`),
and every student is validated on real labels only. docs/accuracy.md has the measurements
(IMDB, seed 0: the default preset 89.39% on test, 89.80% after one round, 90.06% with a
BiLSTM(128) student, 89.93% with that student on soft labels, 90.04% after a second round of
those, the `best` preset; over seeds 0, 1, 2 the second round took the mean from 89.78 to 89.98%).

    >>> index, labels, stats = pseudo_labels(teacher, unlabeled_texts, confidence=0.9)  # doctest: +SKIP
    >>> stats["kept"], stats["per_class"]    # the default model on IMDB's unsup reviews  # doctest: +SKIP
    (34566, {'neg': 17862, 'pos': 16704})
"""

from __future__ import annotations

import numpy as np

from lstmkit.data.unlabeled import read_unlabeled
from lstmkit.errors import LstmkitError


def confident(proba, confidence):
    """(kept mask (N,), predicted class (N,)) of probabilities (N, 1) binary or (N, K)."""
    proba = np.asarray(proba)
    if proba.shape[-1] == 1:
        p1 = proba[:, 0]
        predicted = (p1 >= 0.5).astype(np.int32)
        top = np.where(predicted == 1, p1, 1.0 - p1)
    else:
        predicted = np.argmax(proba, axis=-1).astype(np.int32)
        top = np.max(proba, axis=-1)
    return top >= confidence, predicted


def pseudo_labels(model, texts, confidence, *, soft=False, class_names=None, batch_size=256):
    """Which unlabeled texts the model labels with probability >= confidence, and those labels.

    soft: the targets are the model's probabilities instead of its predicted classes
    (distillation, Hinton et al. 2015): a text it calls 0.7 positive teaches 0.7, not 1.

    Returns (index (M,) int32 into texts, labels, stats {"unlabeled", "kept", "per_class"}), labels
    (M,) int32 classes; or, soft, float32 (M,) P(class 1) for a binary model, (M, K) for K classes.
    per_class counts the predicted classes.
    """
    if not 0.5 <= confidence < 1.0:
        raise LstmkitError(f"--pseudo-confidence must be in [0.5, 1), got {confidence}")
    proba = np.asarray(model.predict(texts, batch_size=batch_size))
    keep, predicted = confident(proba, confidence)
    names = class_names or model.class_names
    index = np.flatnonzero(keep).astype(np.int32)
    per_class = {name: int(np.sum(predicted[keep] == k)) for k, name in enumerate(names)}
    if soft:
        labels = (proba[:, 0] if proba.shape[-1] == 1 else proba)[keep].astype(np.float32)
    else:
        labels = predicted[keep]
    return index, labels, {"unlabeled": len(texts), "kept": len(index), "per_class": per_class}


def with_pseudo_labels(labels, pseudo, n_classes):
    """The labeled texts' classes followed by the pseudo-labels, in one array `fit` takes.

    Hard pseudo-labels (ints) give (N + M,) int32. Soft ones (floats) make every target soft:
    binary (N + M,) float32, the classes becoming 0.0 and 1.0; K classes (N + M, K), one-hot.

    >>> with_pseudo_labels(np.array([0, 1]), np.array([0.8], np.float32), 2).tolist()
    [0.0, 1.0, 0.800000011920929]
    """
    labels, pseudo = np.asarray(labels), np.asarray(pseudo)
    if pseudo.dtype.kind != "f":
        return np.concatenate([labels.astype(np.int32), pseudo.astype(np.int32)])
    if pseudo.ndim == 1:
        return np.concatenate([labels.astype(np.float32), pseudo.astype(np.float32)])
    return np.concatenate([np.eye(n_classes, dtype=np.float32)[labels], pseudo.astype(np.float32)])


def pseudo_label_accuracy(model, texts, labels, confidence, *, batch_size=256):
    """How right confident predictions are on labeled data: (fraction kept, accuracy of the kept)."""
    keep, predicted = confident(model.predict(texts, batch_size=batch_size), confidence)
    labels = np.asarray(labels)
    if not keep.any():
        return 0.0, float("nan")
    return float(keep.mean()), float(np.mean(predicted[keep] == labels[keep]))


def read_unlabeled_texts(unlabeled, rounds, text_column, seed):
    """The unlabeled texts of every source, for `rounds` rounds of self-training (none for 0 rounds)."""
    if not rounds:
        return []
    texts = [t for source in unlabeled for t in read_unlabeled(source, text_column=text_column, seed=seed)]
    if not texts:
        raise LstmkitError(f"no unlabeled texts in {', '.join(map(str, unlabeled))}; self-training needs some")
    print(f"unlabeled: {len(texts):,} texts for {rounds} round(s) of self-training", flush=True)
    return texts
