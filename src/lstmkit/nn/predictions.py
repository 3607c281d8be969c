"""What `Sequential.predict` returns: Keras's array of probabilities, which also knows the labels.

Shape legend: N texts, K classes.

As an array it is exactly Keras's output, so `proba[:, 0] > 0.5` and `np.argmax(proba, -1)` work
as before: (N, 1) for a binary model (the sigmoid: the second class's probability), (N, K) for a
K-class model (the softmax). On top of that, for each text:

    labels          N class names (the class indices when the model has no names): the likeliest
                    class, or for a binary model the second class when p >= 0.5
    probabilities   (N, K) every class's probability, a binary model's two as [1 - p, p]
    class_names     the K names, in the order of the columns of `probabilities`

    >>> p = lstmkit.load_model("runs/m").predict(["What a film.", "Dull."])
    >>> p.labels, p.probabilities.round(3)
    (['pos', 'neg'], array([[0.031, 0.969], [0.902, 0.098]], dtype=float32))

A multi-label model (K sigmoids) gives (N, K) independent probabilities and `thresholds` (K,):
its `labels` are each text's set of labels, the classes whose probability is at least their
threshold (`label_sets` takes other thresholds).

    >>> p = lstmkit.load_model("runs/tags").predict(["The minister ran a marathon."])
    >>> p.labels, p.thresholds
    ([['politics', 'sports']], array([0.42, 0.57], dtype=float32))

Arithmetic and comparisons give plain arrays (their results are no longer probabilities); slices
of rows keep the labels.
"""

from __future__ import annotations

import numpy as np

from lstmkit.errors import LstmkitError

EPS = 1e-7  # probabilities are float32: clip before taking logs


def logits(proba):
    """Logits from probabilities: log(p / (1 - p)) for (N, 1), log p for (N, K) (softmax ignores the shift)."""
    p = np.clip(np.asarray(proba, np.float64), EPS, 1.0 - EPS)
    return np.log(p / (1.0 - p)) if p.shape[-1] == 1 else np.log(p)


def with_temperature(proba, temperature):
    """The probabilities of the logits divided by `temperature` (Guo et al. 2017), in the same shape:
    sigmoid(z / T) for (N, 1), softmax(z / T) for (N, K)."""
    if float(temperature) == 1.0:  # the model's own probabilities, unchanged to the bit
        return np.asarray(proba)
    z = logits(proba) / float(temperature)
    if z.shape[-1] == 1:
        return 1.0 / (1.0 + np.exp(-z))
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Predictions(np.ndarray):
    """Probabilities (N, 1) or (N, K), as Keras gives them, with `labels`, `probabilities` and
    `class_names` per row (see the module's docstring); `thresholds` (K,) for a multi-label model,
    None otherwise."""

    class_names: list | None
    thresholds: np.ndarray | None

    def __new__(cls, proba, class_names=None, thresholds=None):
        self = np.asarray(proba).view(cls)  # the new array is this object: its own attribute, set here
        self.class_names = list(class_names) if class_names is not None else None
        self.thresholds = None if thresholds is None else np.asarray(thresholds, np.float32)
        return self

    def __array_finalize__(self, obj):
        self.class_names = getattr(obj, "class_names", None)
        self.thresholds = getattr(obj, "thresholds", None)

    def __array_wrap__(self, out, context=None, return_scalar=False):
        # A ufunc's result (p > 0.5, 1 - p, p.sum()) is a plain array: it holds no probabilities.
        out = np.asarray(out).view(np.ndarray)
        return out[()] if return_scalar else out

    def __reduce__(self):
        # Pickled (sent to another process) as the plain array plus the names.
        return (Predictions, (np.asarray(self).view(np.ndarray), self.class_names, self.thresholds))

    @property
    def probabilities(self):
        """(N, K) float32: every class's probability; a binary model's (N, 1) becomes [1 - p, p]."""
        p = self.view(np.ndarray)
        if p.ndim != 2:
            raise ValueError(
                f"probabilities need the (N, outputs) array predict returned, not a slice of shape {p.shape}"
            )
        return np.concatenate([1.0 - p, p], axis=-1) if p.shape[-1] == 1 else p.copy()

    @property
    def multi_label(self):
        """Whether each text has a set of labels (a multi-label model's predictions)."""
        return self.thresholds is not None

    def label_sets(self, thresholds=None):
        """Multi-label: per text the list of classes whose probability is at least its threshold,
        in class order. thresholds: one number for every class, or K of them; None: the model's.

        >>> Predictions(np.array([[0.9, 0.2], [0.1, 0.6]]), ["a", "b"], [0.5, 0.7]).label_sets()
        [['a'], []]
        """
        if not self.multi_label:
            raise ValueError("label_sets is for a multi-label model's predictions; use .labels")
        p = self.view(np.ndarray)
        cut = (
            self.thresholds if thresholds is None else np.broadcast_to(np.asarray(thresholds, np.float32), p.shape[-1:])
        )
        names = self.class_names if self.class_names is not None else list(range(p.shape[-1]))
        return [[names[k] for k in np.flatnonzero(row >= cut)] for row in p]

    @property
    def labels(self):
        """N labels: the likeliest class's name (its index without names); binary: p >= 0.5 is the
        second class; multi-label: each text's list of labels (`label_sets`)."""
        if self.multi_label:
            return self.label_sets()
        p = self.view(np.ndarray)
        index = (p[:, 0] >= 0.5).astype(int) if p.ndim == 2 and p.shape[-1] == 1 else self.probabilities.argmax(-1)
        names = self.class_names
        return [names[k] if names is not None else int(k) for k in index]


def stored_thresholds(stored, names, where):
    """A multi-label model's thresholds (K,) float32 from its train config's {class name: threshold}:
    one number in (0, 1) per class (None stored: 0.5 each), else an LstmkitError naming `where`."""
    if stored is None:
        return np.full(len(names), 0.5, np.float32)
    if not isinstance(stored, dict) or sorted(stored) != sorted(names):
        raise LstmkitError(
            f"{where}: its thresholds do not name the model's classes ({', '.join(names)}) one each; retrain or restore the model"
        )
    values = [stored[name] for name in names]
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0.0 < t < 1.0 for t in values):
        raise LstmkitError(
            f"{where}: its thresholds must be numbers between 0 and 1 (exclusive), got {values}; retrain or restore the model"
        )
    return np.asarray(values, np.float32)
