"""Would averaging a run's own epochs help? A default run that keeps each epoch's weight average.

Trains the default preset (or it with `--set KEY=JSON` overrides) on IMDB with one seed, keeping
the moving average of the weights after every epoch (what validation reads), then scores the
first epoch's, the final, and the mean of their probabilities on validation (which chooses) and
test (which reports). The final model is the one `lstmkit train --preset default --seed N` saves:

    python benchmarks/snapshot_check.py --data ../shared/data/imdb/aclImdb_labeled.tar.gz --seed 0

An experiment for docs/accuracy.md ("Ensembles"), not a feature: it costs no training beyond the
run, only a second prediction. It prints accuracy and log loss per model.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from ensemble_check import scored_line
from lstmkit.nn.optim import averaged_weights
from lstmkit.tasks import fitting, presets
from lstmkit.tasks import run as main_job


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the labelled IMDB archive")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override a preset setting")
    args = parser.parse_args()
    overrides = {k: json.loads(v) for k, _, v in (s.partition("=") for s in args.set)}
    config = {**presets.DEFAULT, "seed": args.seed, **overrides}
    t0 = time.perf_counter()
    reading = {"text_column": None, "label_column": None, "file_format": None, "header": None}
    train, val, test = main_job.load_data(config, args.data, None, reading, t0)
    names = list(train.class_names)
    snapshots = []

    def keep(epoch, model, opt_state, history, best):
        average = averaged_weights(opt_state)
        snapshots.append(jax.tree.map(np.asarray, average if average is not None else model.params))

    model = fitting.train_one(
        config, train.texts, train.labels, val, names, None, seed=args.seed, epochs=config["epochs"],
        progress=False, on_epoch_end=keep,
    )  # fmt: skip
    print(f"trained in {time.perf_counter() - t0:.0f} s", flush=True)
    splits, scored = {"validation": val, "test": test}, []
    for params in snapshots:
        model.params = jax.tree.map(jax.numpy.asarray, params)
        scored.append({split: np.asarray(model.predict(ds.texts, calibrated=False)) for split, ds in splits.items()})
    for name, chosen in (("epoch 1", scored[:1]), ("final", scored[-1:]), ("average", scored)):
        mean = {split: np.mean([s[split] for s in chosen], axis=0) for split in splits}
        print(scored_line(f"seed {args.seed} {name}", mean, splits, names), flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
