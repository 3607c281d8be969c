"""Multi-label data: each text carries a set of labels, held as a 0/1 matrix (N, K).

Where the sets come from:

    fastText      several __label__s on a line: __label__sports __label__politics The minister ran a marathon
    JSON Lines    a list as the label: {"text": "...", "labels": ["sports", "politics"]}; [] is a text with no label
    CSV / TSV     with --multi-label, labels joined by "|" in the label column: sports|politics

Several `__label__`s or a list-valued label turn multi-label on by themselves; `--multi-label`
forces it (a file with one label per text then gives sets of one), and is the only way for a
CSV/TSV, whose cells are plain strings.

>>> parse_label_sets([["b", "a"], "a", []], "f")
(array([[1, 1],
       [1, 0],
       [0, 0]]), ['a', 'b'])
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from lstmkit.data.dataset import Dataset, label_name, sorted_names
from lstmkit.errors import LstmkitError

LABEL_SEPARATOR = "|"  # between the labels of one CSV/TSV cell


def is_label_set(value) -> bool:
    """Whether a raw label is a list of labels (JSON's list, fastText's several __label__s)."""
    return isinstance(value, (list, tuple))


def parse_label_sets(values, where: str = "labels", min_classes: int = 2, *, separator=None):
    """Raw label sets as a 0/1 matrix (N, K) int64 and the K sorted class names.

    values: per row a list of labels, or one label (a set of one; split at `separator` when it is
    given, as for a CSV cell "a|b"). An empty list is a text with no label; an empty label inside
    a list, or a missing one, is an LstmkitError naming the row. min_classes: fewer distinct
    labels is an error (2 to train; 1 to score a model).
    """
    rows = []
    for i, v in enumerate(values):
        if isinstance(v, str) and separator is not None and v.strip():  # an empty cell is a missing label
            v = v.split(separator)
        if not is_label_set(v):
            rows.append({label_name(v, where, i)})
            continue
        names = set()
        for item in v:
            if item is None or is_label_set(item) or (isinstance(item, str) and not item.strip()):
                raise LstmkitError(
                    f"{where} row {i + 1}: the label list {v!r} holds an empty or nested label; give each label as a non-empty name"
                )
            names.add(label_name(item, where, i))
        rows.append(names)
    class_names = sorted_names(set().union(*rows))
    if not class_names:
        raise LstmkitError(
            f"{where}: no text carries any label (every label list is empty); multi-label data needs labels"
        )
    if len(class_names) < max(min_classes, 1):
        raise LstmkitError(
            f"{where}: every text's labels are '{class_names[0]}' alone (one class); a classifier needs at least two labels"
        )
    if len(class_names) > 1000:
        raise LstmkitError(
            f"{where}: {len(class_names)} distinct labels looks like a text column; choose the label column with --label-column"
        )
    index = {n: k for k, n in enumerate(class_names)}
    matrix = np.zeros((len(rows), len(class_names)), np.int64)
    for i, names in enumerate(rows):
        matrix[i, [index[n] for n in names]] = 1
    return matrix, class_names


def as_multi_label(ds: Dataset) -> Dataset:
    """Single-label data as sets of one label (one-hot rows); multi-label data unchanged.

    >>> as_multi_label(Dataset(["x", "y"], np.array([1, 0]), ["a", "b"])).labels.tolist()
    [[0, 1], [1, 0]]
    """
    if ds.multi_label:
        return ds
    labels = np.zeros((len(ds), len(ds.class_names)), np.int64)
    known = ds.labels >= 0
    labels[np.flatnonzero(known), ds.labels[known]] = 1
    return replace(ds, labels=labels)


def match_labels(ds: Dataset, class_names, multi_label: bool, *, what="the data", owner="the model") -> Dataset:
    """`ds` with the labels of `owner`'s classes and kind: sets of one for a multi-label owner,
    and one label per text for a single-label one (where several are an LstmkitError)."""
    if multi_label:
        ds = as_multi_label(ds)
    elif ds.multi_label:
        raise LstmkitError(
            f"{what} gives some texts several labels, but {owner} is single-label (one class per text); "
            "train a multi-label model (--multi-label), or give each text one label"
        )
    return ds.relabeled(class_names, what=what, owner=owner)


def label_cardinality(labels) -> dict:
    """How many labels texts carry: {"mean": ..., "none": texts with no label, "several": with two or more}."""
    per_text = np.asarray(labels).sum(axis=1)
    return {
        "mean": float(per_text.mean()) if len(per_text) else 0.0,
        "none": int(np.sum(per_text == 0)),
        "several": int(np.sum(per_text >= 2)),
    }
