"""The warnings `lstmkit inspect` gives on an inspection report: one rule each, its threshold, and
one line that names the fix.

`lstmkit.data.inspection` computes the report; each rule here reads it and yields (code, message)
pairs. The thresholds are the ones the README states.

    >>> report = {"splits": {"train": {"labels": {"a": {"count": 95, "share": 0.95}, "b": {"count": 5, "share": 0.05}}}}}
    >>> [code for code, _ in imbalance(report)]
    ['imbalance']
"""

from __future__ import annotations

IMBALANCE_SHARE = 0.10  # a class under this share of train draws the imbalance warning
CUT_SHARE = 0.10  # --sequence-length cutting more than this share of train's texts draws a warning
OOV_SHARE = 0.10  # more than this share of train's tokens out of the vocabulary draws a warning
OOV_SHIFT = 2.0  # test's unknown share over this many times train's (and over 5%) draws a warning


def texts(n: int, what: str = "text", plural: str | None = None) -> str:
    """A count with its noun: '1 text', '2,000 texts'.

    >>> texts(1), texts(2000, "test text"), texts(2, "copy", "copies")
    ('1 text', '2,000 test texts', '2 copies')
    """
    return f"{n:,} {what if n == 1 else plural or what + 's'}"


def where(places: list[str], split: str = "", most: int = 3) -> str:
    """Row numbers as '(test) rows 3, 17', file names as they are; at most `most`, then '...'.

    >>> where(["3", "17"], "test"), where(["train/pos/1_9.txt"], "train"), where(["1", "2", "3", "4"])
    ('test rows 3, 17', 'train/pos/1_9.txt', 'rows 1, 2, 3, ...')
    """
    shown = ", ".join(places[:most]) + (", ..." if len(places) > most else "")
    if places and all(p.isdigit() for p in places):
        return f"{split + ' ' if split else ''}{'row' if len(places) == 1 else 'rows'} {shown}"
    return shown


def _splits(report):
    return report["splits"].items()


def imbalance(report):
    """The smallest class of train under IMBALANCE_SHARE of its texts."""
    labels = report["splits"]["train"]["labels"]
    if len(labels) < 2:
        return
    name, c = min(labels.items(), key=lambda kv: kv[1]["count"])
    if c["share"] < IMBALANCE_SHARE:
        n = sum(v["count"] for v in labels.values())
        yield (
            "imbalance",
            f"class '{name}' is {c['share']:.1%} of train ({c['count']:,} of {n:,} texts, under {IMBALANCE_SHARE:.0%}): "
            "accuracy can look good while it is never predicted; train with --class-weight balanced "
            "and read its recall in `lstmkit evaluate`",
        )


def classes_apart(report):
    """Test classes that train lacks (train and evaluate refuse them), and train classes test lacks."""
    splits = report["splits"]
    if "test" not in splits:
        return
    train, test = splits["train"]["labels"], splits["test"]["labels"]
    unknown = [c for c in test if c not in train]
    if unknown:
        yield (
            "unknown_class",
            f"test has class {', '.join(repr(c) for c in unknown)}, which train lacks: training and evaluate "
            "refuse it; add training examples of it or remove those test rows",
        )
    missing = [c for c in train if c not in test]
    if missing:
        yield (
            "missing_class",
            f"test has no example of class {', '.join(repr(c) for c in missing)}: its recall cannot be measured; "
            "add test examples of it",
        )


def empty_texts(report):
    """Texts the loader dropped as empty, and texts left with no token after standardisation."""
    for name, s in _splits(report):
        if s["empty_dropped"]:
            yield (
                "empty",
                f"{name}: {texts(s['empty_dropped'], 'empty or whitespace-only text')}, which training drops; "
                "fill in the text or remove those rows",
            )
        if s["no_tokens"]["count"]:
            yield (
                "no_tokens",
                f"{name}: {texts(s['no_tokens']['count'])} with no token after standardisation "
                f"(punctuation or markup only; {where(s['no_tokens']['where'])}): the model reads nothing "
                "there; remove them or check the text column",
            )


def very_long(report):
    """Texts over 10 times the median length and over --sequence-length (lstmkit.data.inspection)."""
    for name, s in _splits(report):
        v = s["very_long"]
        if v["count"]:
            yield (
                "very_long",
                f"{name}: {texts(v['count'])} over {v['threshold']:,} tokens (the larger of 10x the median and "
                f"--sequence-length; longest {v['tokens'][0]:,}, {where(v['where'])}): check that each is one "
                "text (a quote left open in a CSV merges rows into one); training reads the first --sequence-length",
            )


def cut(report):
    """--sequence-length cutting more than CUT_SHARE of train's texts."""
    lengths = report["splits"]["train"]["lengths"]
    c = lengths.get("cut")
    if c and c["texts_share"] > CUT_SHARE:
        yield (
            "cut",
            f"--sequence-length {c['sequence_length']:,} cuts {c['texts_share']:.1%} of train's texts "
            f"({c['tokens_share']:.1%} of its tokens), so training never reads their ends; "
            f"--sequence-length {lengths['p99']:,} keeps 99% whole (longer epochs)",
        )


def duplicates(report):
    """Texts repeated within a split, and repeated texts with different labels."""
    for name, s in _splits(report):
        d = s["duplicates"]
        if d["repeated"]:
            e = d["examples"][0]
            yield (
                "duplicates",
                f"{name}: {texts(d['repeated'], 'copy', 'copies')} of earlier texts ({texts(d['groups'])} present twice or "
                f"more, e.g. {where(e['where'])}): "
                + (
                    "they weigh more in training and leak into a validation split carved from it"
                    if name == "train"
                    else "they count more than once in its scores"
                )
                + "; keep one copy of each",
            )
        if d["conflicting"]:
            e = d["examples"][0]  # conflicting groups are shown first
            yield (
                "conflicting_labels",
                f"{name}: {texts(d['conflicting'])} present with different labels (e.g. {where(e['where'])}: "
                f"{', '.join(e['labels'])}): no model can fit both; fix their labels or remove them",
            )


def leakage(report):
    """Test texts that are also in train."""
    a = report.get("across")
    if not a or not a["in_train"]:
        return
    e = a["examples"][0]
    n = report["splits"]["test"]["n"]
    conflicting = f"; {a['conflicting']:,} of them with another label" if a["conflicting"] else ""
    yield (
        "leakage",
        f"test shares {a['in_train']:,} of its {texts(n)} ({a['share']:.1%}) with train (e.g. {where(e['where'], 'test')} "
        f"= {where(e['train_where'], 'train')}{conflicting}): test scores them as seen, so its accuracy reads high; "
        "remove them from the test data",
    )


def out_of_vocabulary(report):
    """Train's tokens mostly outside --max-tokens, or test's words far from train's."""
    splits, settings = report["splits"], report["settings"]
    train = splits["train"]["oov"]["share"]
    if train > OOV_SHARE:
        yield (
            "oov",
            f"--max-tokens {settings['max_tokens']:,} leaves {train:.1%} of train's tokens unknown ([UNK]); "
            f"--max-tokens {report['vocabulary']['max_tokens_for_95']:,} covers 95% of them",
        )
    if "test" in splits:
        test = splits["test"]["oov"]["share"]
        if test > 0.05 and test > OOV_SHIFT * train:
            yield (
                "oov_shift",
                f"{test:.1%} of test's tokens are unknown against {train:.1%} of train's: its words differ "
                "(another domain or language?); train on texts like it",
            )


def not_utf8(report):
    """Bytes the loader replaced by U+FFFD."""
    for name, s in _splits(report):
        if s["replaced_bytes"]:
            yield (
                "not_utf8",
                f"{name}: {s['replaced_bytes']:,} byte sequences that are not UTF-8 were replaced by U+FFFD; "
                "re-save the file as UTF-8",
            )


RULES = (imbalance, classes_apart, leakage, duplicates, empty_texts, very_long, cut, out_of_vocabulary, not_utf8)


def findings(report: dict) -> list[dict]:
    """The warnings on a report: [{"code", "message"}], in the order of RULES."""
    return [{"code": code, "message": message} for rule in RULES for code, message in rule(report)]
