"""Would averaging two default models help? Train a second member beside a finished run, score both and their average.

A finished `lstmkit train` run (member A) is reloaded; member B is trained with the same
configuration, on the same training/validation split (the run's seed draws it), but with
another training seed (initial weights, batch order, dropout). Both, and the mean of their
probabilities, are scored on validation (which chooses) and on test (which reports):

    python benchmarks/ensemble_check.py --data ../shared/data/imdb/aclImdb_labeled.tar.gz \
        --run runs/default-s0 --seed 1 --out runs/ens-s0-b1

It prints accuracy and log loss per member and for the average. The experiment for
docs/accuracy.md that led to the feature, `lstmkit train --members 2`, which trains both in one
run (member B's seed there is the run's + 1000) and keeps them in one model directory.

--set KEY=VALUE changes a training setting of member B only (a member that differs from the
first, docs/accuracy.md "a second member that differs"); --validation-only leaves the test split
alone (a screen); the mean of the two members' logits is printed beside that of their
probabilities:

    python benchmarks/ensemble_check.py --data ../shared/data/imdb/aclImdb_labeled.tar.gz \
        --run runs/default-s0 --seed 1000 --set adversarial=0.5 --validation-only --out runs/b-adv5
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np

from lstmkit.nn.model import load_model
from lstmkit.tasks import fitting
from lstmkit.tasks import run as main_job
from lstmkit.tasks.metrics import classification_report


def log_loss(labels, proba):
    """Mean binary cross-entropy of the sigmoid probabilities (N, 1) against 0/1 labels (N,)."""
    p = np.clip(np.asarray(proba)[:, 0], 1e-7, 1 - 1e-7)
    y = np.asarray(labels)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _value(text):
    """A --set value: a number or true/false as JSON reads it, else the text itself (max, cosine)."""
    try:
        return json.loads(text)
    except ValueError:
        return text.strip()


def _logit(proba):
    p = np.clip(np.asarray(proba, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def scored_line(label, probabilities, splits, names):
    """One line: `label`, then accuracy and log loss on each split of {split name: dataset}, for
    `probabilities` {split name: (N, 1)} (a member's, or a mean of several)."""
    line = f"{label}:"
    for split, ds in splits.items():
        p = probabilities[split]
        accuracy = classification_report(ds.labels, p, names)["accuracy"]
        line += f" {split} accuracy {accuracy:.4f}, log loss {log_loss(ds.labels, p):.4f};"
    return line


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the run's --data")
    parser.add_argument(
        "--run", required=True, type=Path, help="a finished two-class run's model directory (--members 1: one member A)"
    )
    parser.add_argument("--seed", required=True, type=int, help="member B's training seed")
    parser.add_argument("--out", required=True, type=Path, help="where member B's checkpoints go")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="member B's setting")
    parser.add_argument("--validation-only", action="store_true", help="score validation only, not test")
    args = parser.parse_args()
    config = json.loads((args.run / "config.json").read_text())["train_config"]
    changes = {k.strip(): _value(v) for k, _, v in (pair.partition("=") for pair in args.set)}
    t0 = time.perf_counter()
    reading = {"text_column": None, "label_column": None, "file_format": None, "header": None}
    train, val, test = main_job.load_data(config, args.data, None, reading, t0)  # the run's own split
    names = list(train.class_names)
    member_a = load_model(args.run)
    vectorizer = member_a.vectorizer  # one vocabulary, as `--members`; its training length may differ
    if "sequence_length" in changes:
        vectorizer = copy.deepcopy(vectorizer)
        vectorizer.output_sequence_length = int(changes["sequence_length"])
    member_b = fitting.train_one(
        {**config, **changes}, train.texts, train.labels, val, names, args.out, seed=args.seed, epochs=config["epochs"],
        pre=None, state=None, verbose=True, progress=False, checkpoint_extra={}, arrays={}, vectorizer=vectorizer,
    )  # fmt: skip
    for split, ds in (("validation", val), ("test", test))[: 1 if args.validation_only else 2]:
        # the networks' own probabilities: member A's saved temperature would not be B's
        p_a, p_b = member_a.predict(ds.texts, calibrated=False), member_b.predict(ds.texts, calibrated=False)
        logits = (_logit(p_a) + _logit(p_b)) / 2
        for name, p in (
            ("A", p_a),
            ("B", p_b),
            ("average", (np.asarray(p_a) + np.asarray(p_b)) / 2),
            ("average of logits", 1 / (1 + np.exp(-logits))),
        ):
            accuracy = classification_report(ds.labels, p, names)["accuracy"]
            print(f"{split} {name}: accuracy {accuracy:.4f}, log loss {log_loss(ds.labels, p):.4f}", flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
