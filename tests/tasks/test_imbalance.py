"""Imbalanced classes: --class-weight in the loss, PR AUC. (The model directory's weights and the
confusion matrix picture are checked on a trained model in tests/cli/test_files_cli.py.)

The 95/5 data is built so that the cue for the rare class is real but weak: 70% of rare texts
hold the word "zap", and 5% of common ones do. A text with "zap" is then rare with probability
0.05 * 0.7 / (0.05 * 0.7 + 0.95 * 0.05) = 0.42 < 0.5, so an unweighted model that learns the
data well still calls it common; with balanced weights the odds are 0.7 : 0.05 and it says rare.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

from helpers import TINY
from lstmkit.cli import main
from lstmkit.data.text import TextVectorizer
from lstmkit.errors import LstmkitError
from lstmkit.nn.layers import Dense, Embedding, GlobalAveragePool
from lstmkit.nn.model import Sequential
from lstmkit.nn.pooling import GlobalMaxPool
from lstmkit.tasks.classifier import with_class_weights
from lstmkit.tasks.metrics import classification_report, pr_auc

FILLER = ["the", "movie", "was", "a", "plot", "and", "it", "actor", "scene", "really", "then", "so"]


def _skewed(n_common, n_rare, seed):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, n, cue in ((0, n_common, 0.05), (1, n_rare, 0.7)):
        for _ in range(n):
            words = list(rng.choice(FILLER, rng.integers(4, 10)))
            if rng.random() < cue:
                words.insert(rng.integers(len(words) + 1), "zap")
            texts.append(" ".join(words))
            labels.append(label)
    return texts, np.array(labels)


def test_balanced_weights_raise_the_rare_class_recall():
    """95/5, a tiny model (embedding, max over time, sigmoid): the same seed with and without weights."""
    train_texts, train_labels = _skewed(1900, 100, seed=1)
    test_texts, test_labels = _skewed(950, 50, seed=2)
    recall = {}
    for setting in ("none", "balanced"):
        weights = with_class_weights({"class_weight": setting}, train_labels, ["common", "rare"], verbose=False)
        vectorizer = TextVectorizer(max_tokens=20, output_sequence_length=12)
        vectorizer.adapt(train_texts)
        model = Sequential(
            [Embedding(20, 8, mask_zero=True), GlobalMaxPool(), Dense(1, "sigmoid")], vectorizer=vectorizer
        )
        by_name = weights["class_weights"]
        model.compile(
            learning_rate=0.02, class_weight=None if by_name is None else [by_name["common"], by_name["rare"]]
        )
        model.fit(train_texts, train_labels, epochs=5, batch_size=64, seed=0, verbose=False, progress=False)
        report = classification_report(test_labels, model.predict(test_texts), ["common", "rare"])
        recall[setting] = report["per_class"]["rare"]["recall"]
    assert recall["balanced"] >= recall["none"] + 0.3, recall  # measured: 0.68 against 0.06 (seeds 1, 2: 0.04, 0.2)


@pytest.mark.parametrize(
    "setting,message",
    [
        ("heavy", "is not none, balanced or JSON"),
        ('{"rare": -1}', "class 'rare' has weight -1"),
        ('{"other": 2}', "names class 'other', which the training data does not have"),
    ],
)
def test_bad_class_weights_are_one_clear_line(tmp_path, setting, message):
    texts, labels = _skewed(40, 10, seed=3)
    data = tmp_path / "skewed.csv"
    data.write_text("text,label\n" + "".join(f"{t},{'rare' if y else 'common'}\n" for t, y in zip(texts, labels)))
    args = ["train", "--data", str(data), "--out", str(tmp_path / "m"), "--class-weight", setting, *TINY]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    last = r.output.strip().splitlines()[-1]  # the data's lines may come first, then the one error
    assert last.startswith("Error: ") and message in last and "Error" not in r.output[: -len(last) - 1], r.output


def test_pr_auc_against_worked_examples():
    # scikit-learn's documented example of average_precision_score
    assert pr_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.8333333333)
    assert pr_auc([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == 1.0
    # one threshold for tied scores: precision 2/4 reached at recall 1
    assert pr_auc([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.5)
    m = classification_report(np.array([0, 0, 1, 1]), np.array([[0.1], [0.4], [0.35], [0.8]]), ["a", "b"])
    assert m["pr_auc"] == pytest.approx(0.8333333333)


def test_class_weights_multiply_each_examples_loss():
    """The weighted loss is the mean of w[y] times each example's own loss (from unweighted calls)."""
    model = Sequential([Embedding(10, 4), GlobalAveragePool(), Dense(3, "softmax")]).compile()
    model.build(seed=0)
    weighted = Sequential([Embedding(10, 4), GlobalAveragePool(), Dense(3, "softmax")])
    weighted.compile(class_weight={0: 1.0, 1: 3.0, 2: 0.5})
    ids = jnp.array(np.random.default_rng(0).integers(1, 10, (4, 5)))
    labels, ones = jnp.array([0, 1, 2, 1]), jnp.ones(4)
    each = [float(model.loss_fn(model.params, ids[i : i + 1], labels[i : i + 1], ones[:1])[0]) for i in range(4)]
    loss, correct = weighted.architecture.loss_fn(model.params, ids, labels, ones)
    assert float(loss) == pytest.approx(np.mean(np.array([1.0, 3.0, 0.5, 3.0]) * each), rel=1e-5)
    assert float(correct) == float(model.loss_fn(model.params, ids, labels, ones)[1])  # counts stay unweighted
    soft = jax.nn.one_hot(labels, 3)  # soft targets that are one-hot weigh as their class
    assert float(weighted.architecture.loss_fn(model.params, ids, soft, ones)[0]) == pytest.approx(
        float(loss), rel=1e-5
    )
    with pytest.raises(LstmkitError, match="2 weights for 3 classes"):
        weighted.compile(class_weight=[1.0, 2.0])


def test_with_class_weights():
    labels = np.array([0] * 6 + [1] * 2 + [2] * 0 + [-1] * 3)
    config = with_class_weights({"class_weight": "balanced"}, labels, ["a", "b", "c"], verbose=False)
    assert config["class_weights"] == {"a": 8 / 18, "b": 8 / 6, "c": 1.0}  # N / (K n_k); a class with none: 1
    config = with_class_weights({"class_weight": '{"b": 4}'}, labels, ["a", "b", "c"], verbose=False)
    assert config["class_weights"] == {"a": 1.0, "b": 4.0, "c": 1.0}
