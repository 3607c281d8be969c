"""What labelled data holds before a model trains on it: labels, lengths in tokens, duplicates,
leakage from train into test, empty and very long texts, the out-of-vocabulary rate.

Shape legend: N texts of one split.

`lstmkit inspect` prints these numbers. They are pure functions of texts and labels (reading the
files is the loaders' job), and the tokens are the vectorizer's: the same standardisation
(`lstmkit.data.tokens`), split on the ASCII blanks, so a length here is what the model reads and
the vocabulary is the one `TextVectorizer.adapt` would learn from train.

    >>> settings = Settings(max_tokens=100, sequence_length=3, standardize="lower_and_strip_punctuation", strip_html=True)
    >>> train = Split(["Good film.", "Bad.", "Good film. ", "A long, long film!"], ["pos", "neg", "pos", "neg"])
    >>> report = inspect_splits(train, None, settings)
    >>> report["splits"]["train"]["duplicates"]["same_tokens"], report["splits"]["train"]["lengths"]["max"]
    (1, 4)
    >>> [w["code"] for w in report["warnings"]]
    ['duplicates', 'cut']
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from lstmkit.data.findings import findings
from lstmkit.data.tokens import keras_order, strip_html_breaks, translation

LONG_FACTOR = 10  # a text over this many times the median length (and over --sequence-length) is very long
COVERAGE = 0.95  # the vocabulary size suggested is the one that covers this share of train's tokens
EXAMPLES = 3  # examples (row numbers or file names) shown per finding


@dataclass(frozen=True)
class Settings:
    """What the vectorizer and the model would read: vocabulary size, training length, standardisation."""

    max_tokens: int
    sequence_length: int
    standardize: str | None
    strip_html: bool


@dataclass
class Split:
    """One split's texts and labels (class names), where each came from (row numbers or file names,
    1-based; None: positions), and what its loader dropped or replaced. Multi-label data also has
    label_sets, each text's list of labels (its label is then that list joined by "|")."""

    texts: list[str]
    labels: list[str]
    ids: list[str] | None = None
    source: str = ""
    empty_dropped: int = 0
    replaced: int = 0
    label_sets: list[list[str]] | None = None

    def where(self, i: int) -> str:
        return self.ids[i] if self.ids is not None else str(i + 1)


@dataclass
class Tokens:
    """A split as the vectorizer sees it: lengths (N,) in tokens, each text's tokens joined by one
    space (two texts the model cannot tell apart have the same key), and every token's count."""

    lengths: np.ndarray
    keys: list[bytes]
    counts: Counter


def tokenize(texts: list[str], settings: Settings) -> Tokens:
    """Standardise and split each text as `TextVectorizer` does (UTF-8 bytes, one translate, split
    on ASCII blanks).

    >>> t = tokenize(["Good film.<br />Bad", "x"], Settings(10, 5, "lower_and_strip_punctuation", True))
    >>> t.lengths.tolist(), t.keys[0], t.counts[b"bad"]
    ([3, 1], b'good film bad', 1)
    """
    table, delete = translation(settings.standardize)
    lengths, keys, counts = np.zeros(len(texts), np.int64), [], Counter()
    for i, text in enumerate(texts):
        if settings.strip_html:
            text = strip_html_breaks(text)
        tokens = text.encode("utf-8", "surrogatepass").translate(table, delete).split()
        lengths[i] = len(tokens)
        keys.append(b" ".join(tokens))
        counts.update(tokens)
    return Tokens(lengths, keys, counts)


def label_summary(labels: list[str]) -> dict:
    """{class: {"count", "share"}}, classes in sorted order.

    >>> label_summary(["b", "a", "b", "b"])
    {'a': {'count': 1, 'share': 0.25}, 'b': {'count': 3, 'share': 0.75}}
    """
    counts = Counter(labels)
    return {c: {"count": counts[c], "share": counts[c] / len(labels)} for c in sorted(counts, key=_class_order)}


def label_set_summary(label_sets: list[list[str]]) -> dict:
    """Multi-label: {label: {"count", "share"}}, the texts carrying each label and their share of all texts.

    >>> label_set_summary([["a", "b"], ["b"], []])["b"]
    {'count': 2, 'share': 0.6666666666666666}
    """
    counts = Counter(name for names in label_sets for name in names)
    n = max(len(label_sets), 1)
    return {c: {"count": counts[c], "share": counts[c] / n} for c in sorted(counts, key=_class_order)}


def labels_per_text(label_sets: list[list[str]]) -> dict:
    """Multi-label: how many labels texts carry, {"mean", "none", "several"}."""
    sizes = np.array([len(names) for names in label_sets])
    return {
        "mean": float(sizes.mean()) if len(sizes) else 0.0,
        "none": int(np.sum(sizes == 0)),
        "several": int(np.sum(sizes > 1)),
    }


def _class_order(name):
    return (0, int(name), "") if name.lstrip("+-").isdigit() else (1, 0, name)


def length_summary(lengths: np.ndarray, sequence_length: int) -> dict:
    """Lengths in tokens: min, median, p90, p99, max (each the smallest length that at least that
    share of the texts do not exceed), mean and total; and what `sequence_length` cuts.

    cut: texts longer than sequence_length (count, share) and the tokens past it (count, share of
    all tokens); fits_99: the length that 99% of texts fit in whole (p99).

    >>> s = length_summary(np.array([1, 2, 3, 10]), 4)
    >>> s["median"], s["max"], s["cut"]["texts"], s["cut"]["tokens"], s["cut"]["tokens_share"]
    (2, 10, 1, 6, 0.375)
    """
    if not len(lengths):
        return {}
    q = {name: int(np.quantile(lengths, p, method="inverted_cdf")) for name, p in _QUANTILES}
    over = lengths > sequence_length
    total = int(lengths.sum())
    cut_tokens = int((lengths[over] - sequence_length).sum())
    cut = {
        "sequence_length": sequence_length,
        "texts": int(over.sum()),
        "texts_share": float(over.mean()),
        "tokens": cut_tokens,
        "tokens_share": cut_tokens / total if total else 0.0,
    }
    return {"min": int(lengths.min()), **q, "max": int(lengths.max()), "mean": float(lengths.mean()), "total": total, "cut": cut}  # fmt: skip


_QUANTILES = (("median", 0.5), ("p90", 0.9), ("p99", 0.99))


def text_groups(texts: list[str]) -> dict[str, list[int]]:
    """Positions of each distinct text (surrounding whitespace ignored), in order of first appearance."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(texts):
        groups[text.strip()].append(i)
    return groups


def duplicates_within(split: Split, groups: dict[str, list[int]], keys: list[bytes]) -> dict:
    """Texts that repeat an earlier one in the same split.

    repeated: copies beyond the first (N minus distinct texts); groups: texts present twice or
    more; conflicting: of those, the ones with more than one label; same_tokens: repeats of what
    the model reads (the same tokens after standardisation, so 'Great!' repeats 'great');
    examples: up to EXAMPLES groups, conflicting ones first, then the most copied.

    >>> s = Split(["a", "b", "a", "A!", "a"], ["x", "y", "y", "x", "x"])
    >>> d = duplicates_within(s, text_groups(s.texts), tokenize(s.texts, Settings(10, 5, "lower_and_strip_punctuation", False)).keys)
    >>> d["repeated"], d["groups"], d["conflicting"], d["same_tokens"], d["examples"][0]["where"]
    (2, 1, 1, 3, ['1', '3', '5'])
    """
    repeats = [g for g in groups.values() if len(g) > 1]
    conflicting = [g for g in repeats if len({split.labels[i] for i in g}) > 1]
    shown = sorted(repeats, key=lambda g: (g not in conflicting, -len(g)))[:EXAMPLES]
    return {
        "repeated": sum(len(g) - 1 for g in repeats),
        "groups": len(repeats),
        "conflicting": len(conflicting),
        "same_tokens": len(keys) - len(set(keys)),
        "examples": [_example(split, g) for g in shown],
    }


def _example(split: Split, positions, extra=None) -> dict:
    return {
        "where": [split.where(i) for i in positions[:10]],
        "labels": sorted({split.labels[i] for i in positions}, key=_class_order),
        "copies": len(positions),
        "text": _preview(split.texts[positions[0]]),
        **(extra or {}),
    }


def _preview(text: str, width: int = 70) -> str:
    flat = " ".join(text[: 4 * width].split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def duplicates_across(train: Split, test: Split, train_groups, test_groups, train_keys, test_keys) -> dict:
    """Test texts that are also in train (leakage: test then scores texts the model has seen).

    in_train: test texts (with their copies) whose text is in train; share: of test's texts;
    conflicting: those whose label is none of the labels the text has in train; same_tokens: test
    texts whose tokens equal a train text's; examples: up to EXAMPLES, conflicting ones first.

    >>> tr, te = Split(["a", "b", "c"], ["x", "y", "x"]), Split(["b", "d", "a"], ["y", "x", "y"])
    >>> d = duplicates_across(tr, te, text_groups(tr.texts), text_groups(te.texts), [b"a", b"b", b"c"], [b"b", b"d", b"a"])
    >>> d["in_train"], d["conflicting"], d["examples"][0]["train_where"]
    (2, 1, ['1'])
    """
    hits, conflicting = [], []
    for text, positions in test_groups.items():
        in_train = train_groups.get(text)
        if in_train is None:
            continue
        hits.append((text, positions))
        train_labels = {train.labels[i] for i in in_train}
        if any(test.labels[j] not in train_labels for j in positions):
            conflicting.append((text, positions))
    n = sum(len(p) for _, p in hits)
    shown = sorted(hits, key=lambda h: h not in conflicting)[:EXAMPLES]
    train_key_set = set(train_keys)
    return {
        "in_train": n,
        "share": n / len(test.texts) if test.texts else 0.0,
        "conflicting": sum(len(p) for _, p in conflicting),
        "same_tokens": sum(k in train_key_set for k in test_keys),
        "examples": [
            _example(test, p, {"train_where": [train.where(i) for i in train_groups[t][:10]]}) for t, p in shown
        ],
    }


def vocabulary(counts: Counter, max_tokens: int) -> set[bytes]:
    """The max_tokens - 2 tokens `TextVectorizer.adapt` keeps: by count, ties by bytes descending."""
    tokens = [t for t in counts if t != b"[UNK]"]  # the OOV token is never learned
    freq = np.fromiter((counts[t] for t in tokens), dtype=np.int64, count=len(tokens))
    return {tokens[i] for i in keras_order(tokens, freq)[: max_tokens - 2]}


def oov_summary(counts: Counter, known: set[bytes]) -> dict:
    """Tokens outside the vocabulary: {"tokens", "share"} of all the split's tokens."""
    total = sum(counts.values())
    unknown = total - sum(c for t, c in counts.items() if t in known)
    return {"tokens": unknown, "share": unknown / total if total else 0.0}


def max_tokens_covering(counts: Counter, coverage: float = COVERAGE) -> int:
    """The smallest --max-tokens (learned words + 2) whose vocabulary covers `coverage` of the tokens.

    >>> max_tokens_covering(Counter({b"a": 90, b"b": 6, b"c": 4}), 0.95)
    4
    """
    freq = np.sort(np.fromiter(counts.values(), dtype=np.int64, count=len(counts)))[::-1]
    if not len(freq):
        return 3
    covered = np.cumsum(freq) / freq.sum()
    return int(np.searchsorted(covered, coverage - 1e-12)) + 1 + 2


def split_summary(split: Split, tokens: Tokens, groups, known: set[bytes], settings: Settings) -> dict:
    """Everything about one split: counts, labels, lengths, empty and very long texts, duplicates, OOV."""
    lengths = length_summary(tokens.lengths, settings.sequence_length)
    long_at = max(LONG_FACTOR * lengths.get("median", 0), settings.sequence_length)
    long = np.flatnonzero(tokens.lengths > long_at)
    long = long[np.argsort(-tokens.lengths[long], kind="stable")]
    no_tokens = np.flatnonzero(tokens.lengths == 0)
    multi = split.label_sets is not None
    return {
        **({"labels_per_text": labels_per_text(split.label_sets)} if multi else {}),
        "source": split.source,
        "n": len(split.texts),
        "empty_dropped": split.empty_dropped,
        "replaced_bytes": split.replaced,
        "labels": label_set_summary(split.label_sets) if multi else label_summary(split.labels),
        "lengths": lengths,
        "no_tokens": {"count": len(no_tokens), "where": [split.where(i) for i in no_tokens[:EXAMPLES]]},
        "very_long": {
            "threshold": int(long_at),
            "count": len(long),
            "where": [split.where(i) for i in long[:EXAMPLES]],
            "tokens": [int(tokens.lengths[i]) for i in long[:EXAMPLES]],
        },
        "duplicates": duplicates_within(split, groups, tokens.keys),
        "oov": oov_summary(tokens.counts, known),
    }


def inspect_splits(train: Split, test: Split | None, settings: Settings) -> dict:
    """The report `lstmkit inspect` prints: settings, each split's summary, vocabulary, leakage
    from train into test, and the warnings (each one line with its fix; see `findings`)."""
    train_tokens = tokenize(train.texts, settings)
    known = vocabulary(train_tokens.counts, settings.max_tokens)
    train_groups = text_groups(train.texts)
    report = {
        "settings": {
            "max_tokens": settings.max_tokens,
            "sequence_length": settings.sequence_length,
            "standardize": settings.standardize,
            "strip_html": settings.strip_html,
        },
        "splits": {"train": split_summary(train, train_tokens, train_groups, known, settings)},
        "vocabulary": {
            "distinct": len(train_tokens.counts),
            "learned": len(known),
            "max_tokens_for_95": max_tokens_covering(train_tokens.counts),
        },
    }
    if test is not None:
        test_tokens = tokenize(test.texts, settings)
        test_groups = text_groups(test.texts)
        report["splits"]["test"] = split_summary(test, test_tokens, test_groups, known, settings)
        report["across"] = duplicates_across(
            train, test, train_groups, test_groups, train_tokens.keys, test_tokens.keys
        )
    report["warnings"] = findings(report)
    return report
