"""Labeled texts (`Dataset`), stratified and grouped splits, label parsing, text decoding.

Every loader returns a `Dataset`: texts (N,), integer labels (N,) (multi-label: a 0/1 matrix
(N, K), see `lstmkit.data.multilabel`), class names, and metadata
(where it came from, how many undecodable byte sequences were replaced, how many empty texts
were dropped). Problems that leave usable data (bad bytes, empty texts) give one `DataWarning`
with the count; bad input raises `LstmkitError` with a one-line message naming the fix.

    train, val = train_val_split(ds, 0.1)        stratified and seeded
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace

import numpy as np

from lstmkit.errors import LstmkitError

UNLABELED = -1  # label of the unsup split's reviews


class DataWarning(UserWarning):
    """Data was usable but not clean: bytes replaced or texts dropped (the message has counts)."""


@dataclass
class Dataset:
    """Labeled texts: texts[i] has label labels[i], an index into class_names.

    texts: list[str] (N,); labels: int64 (N,), -1 for unlabeled examples; class_names: the
    names of labels 0..C-1. Multi-label data (`multi_label`) has labels (N, K), 0/1: labels[i, k]
    says whether text i carries class k; a row may hold several ones, or none. Metadata: source (path or 'imdb'), split, ids (one per text: file
    name or row number), replaced (undecodable UTF-8 sequences replaced by U+FFFD) and empty
    (empty texts dropped).

    >>> ds = Dataset(["good", "bad"], np.array([1, 0]), ["neg", "pos"])
    >>> len(ds), ds.class_counts()
    (2, {'neg': 1, 'pos': 1})
    """

    texts: list[str]
    labels: np.ndarray
    class_names: list[str]
    source: str = ""
    split: str | None = None
    ids: list[str] | None = None
    replaced: int = 0
    empty: int = 0

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def multi_label(self) -> bool:
        """Whether each text has a set of labels (labels (N, K) 0/1) rather than one (N,)."""
        return np.ndim(self.labels) == 2

    def class_counts(self) -> dict[str, int]:
        """Examples per class name (unlabeled ones under 'unlabeled'); multi-label: texts carrying each label."""
        if self.multi_label:
            return {name: int(n) for name, n in zip(self.class_names, np.sum(self.labels, axis=0))}
        counts = {name: int(np.sum(self.labels == i)) for i, name in enumerate(self.class_names)}
        if np.any(self.labels == UNLABELED):
            counts["unlabeled"] = int(np.sum(self.labels == UNLABELED))
        return counts

    def subset(self, indices) -> Dataset:
        """The examples at `indices`, in that order, with the same metadata."""
        indices = np.asarray(indices, dtype=np.int64)
        ids = None if self.ids is None else [self.ids[i] for i in indices]
        # An array of row numbers, or a token file's rows (`--stream`, they know their lengths), by one indexing.
        by_array = isinstance(self.texts, np.ndarray) or hasattr(self.texts, "lengths")
        texts = self.texts[indices] if by_array else [self.texts[i] for i in indices]
        return replace(self, texts=texts, labels=self.labels[indices], ids=ids)

    def shuffled(self, seed: int = 0) -> Dataset:
        """The same examples in a seeded random order."""
        return self.subset(np.random.default_rng(seed).permutation(len(self)))

    def relabeled(self, class_names, *, what="the data", owner="the model") -> Dataset:
        """The same examples with labels as indices into `class_names` (a model's classes).

        A file's label ids come from its own sorted classes, so a test file that lacks one of the
        training classes would otherwise have every later label shifted. A subset of the classes
        is fine; a class outside them is an LstmkitError that names it.

        >>> Dataset(["x", "y"], np.array([0, 1]), ["b", "c"]).relabeled(["a", "b", "c"]).labels.tolist()
        [1, 2]
        """
        class_names = list(class_names)
        unknown = [c for c in self.class_names if c not in class_names]
        if unknown:
            raise LstmkitError(
                f"{what} has class {unknown[0]!r}, which {owner} does not know (its classes: {', '.join(map(str, class_names))}); "
                "remove those rows or train with them"
            )
        if self.multi_label:  # the same 0/1 columns, moved to the model's order
            columns = np.zeros((len(self), len(class_names)), self.labels.dtype)
            columns[:, [class_names.index(c) for c in self.class_names]] = self.labels
            return replace(self, labels=columns, class_names=class_names)
        index = np.array([class_names.index(c) for c in self.class_names] + [UNLABELED], np.int64)
        return replace(self, labels=index[self.labels], class_names=class_names)


def train_val_split(dataset: Dataset, val_fraction: float = 0.1, seed: int = 0, groups=None) -> tuple[Dataset, Dataset]:
    """Split into (train, validation), stratified by label and seeded; both come back shuffled.

    Each class gives round(n_c * val_fraction) examples to validation, so class proportions stay
    the same in both parts. Multi-label data is stratified by each text's rarest label (texts
    with no label form one more stratum), so every label keeps about its share in both parts.

    groups: one key per example (e.g. `imdb_groups`); examples sharing a key go to the same part,
    whole groups are drawn per class until the class has its share. Validation then holds
    groups (on IMDB: movies) that training never saw, as a test split with new movies does.

    >>> ds = Dataset([str(i) for i in range(10)], np.array([0] * 5 + [1] * 5), ["a", "b"])
    >>> tr, va = train_val_split(ds, 0.2); len(tr), len(va), sorted(va.labels.tolist())
    (8, 2, [0, 1])
    """
    if not 0.0 < val_fraction < 1.0:
        raise LstmkitError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    strata = _strata(dataset.labels)
    for label in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == label))
        n_val = round(len(members) * val_fraction)
        if groups is not None:  # whole groups, in a random order
            keys = np.asarray([groups[i] for i in members])
            rank = {k: r for r, k in enumerate(rng.permutation(np.unique(keys)))}
            group_rank = np.array([rank[k] for k in keys])
            order = np.argsort(group_rank, kind="stable")
            members, group_rank = members[order], group_rank[order]
            if n_val:  # validation ends with the whole group that holds its n_val-th example
                n_val = int(np.sum(group_rank <= group_rank[n_val - 1]))
        val_idx.append(members[:n_val])
        train_idx.append(members[n_val:])
    train_idx = rng.permutation(np.concatenate(train_idx)) if train_idx else np.zeros(0, np.int64)
    val_idx = rng.permutation(np.concatenate(val_idx)) if val_idx else np.zeros(0, np.int64)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise LstmkitError(
            f"val_fraction={val_fraction} of {len(dataset)} examples leaves an empty part; use more data or another fraction"
        )
    return dataset.subset(train_idx), dataset.subset(val_idx)


def _strata(labels) -> np.ndarray:
    """The key a split stratifies on (N,): the label; multi-label, the rarest label a text carries
    (K for a text with none).

    >>> _strata(np.array([[1, 1], [1, 0], [0, 0]])).tolist()
    [1, 0, 2]
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        return labels
    counts = labels.sum(axis=0)
    rarity = np.where(labels > 0, counts[None, :], np.iinfo(np.int64).max)
    return np.where(labels.any(axis=1), rarity.argmin(axis=1), labels.shape[1])


def parse_labels(values, where: str = "labels", min_classes: int = 2) -> tuple[np.ndarray, list[str]]:
    """Turn raw labels (strings or integers) into ids 0..C-1 and sorted class names.

    Integer labels sort numerically, others alphabetically, so the mapping never depends on row
    order. Floats must be whole numbers; empty labels are an error. min_classes: fewer distinct
    labels is an error (2 to train a classifier; 1 to score one).

    >>> parse_labels(["pos", "neg", "pos"])
    (array([1, 0, 1]), ['neg', 'pos'])
    >>> parse_labels([10, 2, "2"])
    (array([1, 0, 0]), ['2', '10'])
    """
    names = [label_name(v, where, i) for i, v in enumerate(values)]
    distinct = set(names)
    class_names = sorted_names(distinct)
    if len(class_names) < max(min_classes, 1):
        raise LstmkitError(
            f"{where}: every row has label '{class_names[0]}' (one class); a classifier needs at least two classes"
            if class_names
            else f"{where}: the dataset is empty"
        )
    if len(class_names) > 1000 or (len(names) >= 20 and len(class_names) > len(names) // 2):
        raise LstmkitError(
            f"{where}: {len(class_names)} distinct labels in {len(names)} rows looks like a text column; choose the label column with --label-column"
        )
    index = {n: i for i, n in enumerate(class_names)}
    return np.array([index[n] for n in names], dtype=np.int64), class_names


def sorted_names(distinct) -> list[str]:
    """Class names in their fixed order: numerically when all are integers, else alphabetically."""
    numeric = all(_INT.fullmatch(n) for n in distinct)
    return sorted(distinct, key=int) if numeric else sorted(distinct)


def label_name(v, where: str, i: int) -> str:
    """One raw label as a class name: integers and whole floats as digits, strings stripped; a
    missing, empty or fractional label is an LstmkitError naming row i + 1.

    >>> label_name(3.0, "f", 0), label_name(" pos ", "f", 0)
    ('3', 'pos')
    """
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, str) and v.strip().lower() == "nan":  # what pandas writes for a missing value
        raise LstmkitError(
            f"{where} row {i + 1}: the label is {v.strip()} (a missing value); fill it in or remove the row"
        )
    if isinstance(v, str) and v.strip():
        name = v.strip()
        if _FLOAT.fullmatch(name):
            number = float(name)
            if not number.is_integer():
                raise LstmkitError(
                    f"{where} row {i + 1}: label '{name}' is not a whole number; labels must be class names or integers (regression targets are not supported)"
                )
            name = str(int(number))
        return name
    if v is None or (isinstance(v, str) and not v.strip()):
        raise LstmkitError(f"{where} row {i + 1}: the label is empty; fill it in or remove the row")
    if isinstance(v, (list, tuple)):
        raise LstmkitError(
            f"{where} row {i + 1}: label {v!r} is a list of labels, which is multi-label classification; "
            "read it as multi-label (lists are detected unless multi_label=False), or give each row one label"
        )
    raise LstmkitError(f"{where} row {i + 1}: label {v!r} does not parse; labels must be class names or integers")


_INT = re.compile(r"[+-]?\d+")


_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")


def decode_text(raw: bytes) -> tuple[str, int]:
    """Decode UTF-8, replacing each undecodable sequence by U+FFFD: (text, replacements).

    >>> decode_text(b"caf\\xe9 ok")
    ('caf\\ufffd ok', 1)
    """
    try:
        return raw.decode("utf-8"), 0
    except UnicodeDecodeError:
        pass
    parts, count, pos = [], 0, 0
    while True:
        try:
            parts.append(raw[pos:].decode("utf-8"))
            return "".join(parts), count
        except UnicodeDecodeError as e:
            # Same result as errors="replace", which substitutes exactly raw[start:end].
            parts.append(raw[pos : pos + e.start].decode("utf-8"))
            parts.append("\ufffd")
            count += 1
            pos += e.end


def warn_replaced(ds: Dataset) -> None:
    if ds.replaced:
        warnings.warn(
            DataWarning(
                f"{ds.source}: {ds.replaced} undecodable byte sequences (not UTF-8) were replaced by U+FFFD; re-save the file as UTF-8 to keep them"
            ),
            stacklevel=4,
        )


def drop_empty(ds: Dataset, min_classes: int = 2) -> Dataset:
    """Drop empty (or whitespace-only) texts with one counted warning; refuse an empty dataset."""
    keep = [i for i, t in enumerate(ds.texts) if t.strip()]
    if not keep:
        raise LstmkitError(f"{ds.source}: every text is empty; the dataset is empty (check the text column)")
    if len(keep) == len(ds.texts):
        return ds
    dropped = len(ds.texts) - len(keep)
    warnings.warn(
        DataWarning(f"{ds.source}: dropped {dropped} empty text{'s' * (dropped != 1)} of {len(ds.texts)}"), stacklevel=4
    )
    out = ds.subset(keep)
    out.empty = dropped
    known = out.labels[out.labels != UNLABELED]
    classes = np.count_nonzero(out.labels.sum(axis=0)) if out.multi_label else len(np.unique(known))
    if ds.split != "unsup" and classes < min_classes:
        raise LstmkitError(
            f"{ds.source}: after dropping empty texts only one class is left; a classifier needs at least two"
        )
    return out
