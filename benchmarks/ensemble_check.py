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
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--run", required=True, type=Path, help="a finished two-class run's model directory")
    parser.add_argument("--seed", required=True, type=int, help="member B's training seed")
    parser.add_argument("--out", required=True, type=Path, help="where member B's checkpoints go")
    args = parser.parse_args()
    config = json.loads((args.run / "config.json").read_text())["train_config"]
    t0 = time.perf_counter()
    reading = {"text_column": None, "label_column": None, "file_format": None, "header": None}
    train, val, test = main_job.load_data(config, args.data, None, reading, t0)  # the run's own split
    names = list(train.class_names)
    member_b = fitting.train_one(
        config, train.texts, train.labels, val, names, args.out, seed=args.seed, epochs=config["epochs"],
        pre=None, state=None, verbose=True, progress=False, checkpoint_extra={}, arrays={},
    )  # fmt: skip
    member_a = load_model(args.run)
    for split, ds in (("validation", val), ("test", test)):
        # the networks' own probabilities: member A's saved temperature would not be B's
        p_a, p_b = member_a.predict(ds.texts, calibrated=False), member_b.predict(ds.texts, calibrated=False)
        for name, p in (("A", p_a), ("B", p_b), ("average", (np.asarray(p_a) + np.asarray(p_b)) / 2)):
            accuracy = classification_report(ds.labels, p, names)["accuracy"]
            print(f"{split} {name}: accuracy {accuracy:.4f}, log loss {log_loss(ds.labels, p):.4f}", flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
