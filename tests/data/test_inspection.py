"""The numbers `lstmkit inspect` reports, on texts written here: lengths and unknown words against
the TextVectorizer itself, duplicates and leakage against hand counts, and the warnings' rules."""

from collections import Counter

import numpy as np
import pytest

from lstmkit.data.findings import findings, imbalance
from lstmkit.data.inspection import (
    Settings,
    Split,
    duplicates_across,
    duplicates_within,
    inspect_splits,
    length_summary,
    max_tokens_covering,
    text_groups,
    tokenize,
)
from lstmkit.data.text import OOV_ID, TextVectorizer

SETTINGS = Settings(max_tokens=8, sequence_length=4, standardize="lower_and_strip_punctuation", strip_html=True)


def test_lengths_and_unknown_words_are_the_vectorizers():
    """Token counts per text and the share of [UNK] ids equal what TextVectorizer gives, HTML breaks,
    punctuation, non-ASCII capitals and ties in the counts included."""
    rng = np.random.default_rng(0)
    words = ["Good", "film", "bad<br />plot", "École", "dull!", "x-y", "a", "b", "c", "d", "e", "f", "g"]
    train = [" ".join(rng.choice(words, rng.integers(1, 12))) for _ in range(200)]
    test = [" ".join(rng.choice(words + ["new", "unseen"], rng.integers(1, 12))) for _ in range(50)]
    vectorizer = TextVectorizer(max_tokens=SETTINGS.max_tokens, strip_html=True)
    vectorizer.adapt(train)
    report = inspect_splits(Split(train, ["x"] * 200), Split(test, ["x"] * 50), SETTINGS)
    for name, texts in (("train", train), ("test", test)):
        ids = vectorizer.encode_ragged(texts, max_length=0)
        assert tokenize(texts, SETTINGS).lengths.tolist() == [len(d) for d in ids]
        flat = np.concatenate(ids)
        assert report["splits"][name]["oov"]["share"] == pytest.approx(np.mean(flat == OOV_ID), abs=1e-12)
        assert report["splits"][name]["oov"]["tokens"] == int(np.sum(flat == OOV_ID))
    assert report["vocabulary"]["learned"] == SETTINGS.max_tokens - 2
    assert 0 < report["splits"]["train"]["oov"]["share"] < report["splits"]["test"]["oov"]["share"]


def test_length_summary_by_hand():
    s = length_summary(np.arange(1, 11), sequence_length=7)  # 1..10 tokens, 55 in all
    assert (s["min"], s["median"], s["p90"], s["p99"], s["max"], s["total"]) == (1, 5, 9, 10, 10, 55)
    assert s["cut"]["texts"] == 3 and s["cut"]["texts_share"] == pytest.approx(0.3)
    assert s["cut"]["tokens"] == 1 + 2 + 3 and s["cut"]["tokens_share"] == pytest.approx(6 / 55)


def test_duplicates_within_and_across_with_conflicting_labels():
    train = Split(["a b", "c", " a b ", "d", "c", "D!", "e"], ["pos", "neg", "pos", "neg", "pos", "neg", "pos"])
    test = Split(["c", "e", "new", "e"], ["neg", "neg", "pos", "neg"])
    keys = {name: tokenize(s.texts, SETTINGS).keys for name, s in (("train", train), ("test", test))}
    groups = {name: text_groups(s.texts) for name, s in (("train", train), ("test", test))}
    d = duplicates_within(train, groups["train"], keys["train"])
    # "a b" twice (whitespace aside), "c" twice with two labels; "D!" is "d" to the model only
    assert (d["repeated"], d["groups"], d["conflicting"], d["same_tokens"]) == (2, 2, 1, 3)
    assert d["examples"][0]["where"] == ["2", "5"] and d["examples"][0]["labels"] == ["neg", "pos"]
    a = duplicates_across(train, test, groups["train"], groups["test"], keys["train"], keys["test"])
    # test's "c" (train has it as neg and pos) and both "e" (train: pos, test: neg) are in train
    assert (a["in_train"], a["conflicting"], a["share"]) == (3, 2, 0.75)
    assert a["examples"][0]["train_where"] == ["7"]


def test_max_tokens_covering_counts_the_two_special_ids():
    counts = Counter({b"a": 50, b"b": 30, b"c": 15, b"d": 5})
    assert max_tokens_covering(counts, 0.95) == 3 + 2  # a, b, c cover 95%
    assert max_tokens_covering(counts, 0.96) == 4 + 2


@pytest.mark.parametrize("minority, warned", [(5, True), (9, True), (10, False), (50, False)])
def test_imbalance_is_warned_under_ten_percent(minority, warned):
    labels = {
        "a": {"count": 100 - minority, "share": 1 - minority / 100},
        "b": {"count": minority, "share": minority / 100},
    }
    found = list(imbalance({"splits": {"train": {"labels": labels}}}))
    assert bool(found) == warned
    if warned:
        assert "class 'b'" in found[0][1] and "--class-weight balanced" in found[0][1]


def test_clean_data_has_no_warnings_and_each_problem_its_own():
    texts = [f"review {i} was good" for i in range(50)] + [f"review {i} was bad" for i in range(50)]
    labels = ["pos"] * 50 + ["neg"] * 50
    settings = Settings(max_tokens=1000, sequence_length=10, standardize="lower_and_strip_punctuation", strip_html=True)
    clean = inspect_splits(
        Split(texts, labels), Split(["was good review 7", "was bad review 8"], ["pos", "neg"]), settings
    )
    assert clean["warnings"] == []
    one_class = inspect_splits(Split(texts, labels), Split(["was good review 7"], ["pos"]), settings)
    assert [w["code"] for w in one_class["warnings"]] == ["missing_class"]  # test has no 'neg'
    messy = Split([*texts, "!!!", "word " * 500], [*labels, "pos", "neg"], empty_dropped=2, replaced=3)
    codes = [w["code"] for w in findings(inspect_splits(messy, None, settings))]
    assert codes == ["empty", "no_tokens", "very_long", "not_utf8"]


def test_a_test_class_that_train_lacks_is_named():
    settings = Settings(max_tokens=100, sequence_length=10, standardize="lower", strip_html=False)
    train = Split(["good", "bad", "fine", "poor"], ["pos", "neg", "pos", "neg"])
    report = inspect_splits(train, Split(["so so", "good one"], ["mixed", "pos"]), settings)
    unknown = [w["message"] for w in report["warnings"] if w["code"] == "unknown_class"]
    assert len(unknown) == 1 and "test has class 'mixed', which train lacks" in unknown[0]
    assert [w["code"] for w in report["warnings"]].count("missing_class") == 1  # no 'neg' in test
