"""Would averaging finished runs help? Scores saved models and every mean of their probabilities.

The runs are model directories trained on one split (the same --seed; the first run's config
draws the split); each, and the mean of the networks' probabilities of every subset of them, is
scored on validation (which chooses) and on test (which reports):

    python benchmarks/average_runs.py --data ../shared/data/imdb/aclImdb_labeled.tar.gz \
        runs/best-s0 runs/default-s0 runs/ens-s0-b1

An experiment for docs/accuracy.md ("Ensembles"); `lstmkit train --members N` is the feature.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from ensemble_check import scored_line
from lstmkit.nn.model import load_model
from lstmkit.tasks import run as main_job


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the runs' --data")
    parser.add_argument("runs", nargs="+", type=Path, help="finished two-class runs' model directories")
    args = parser.parse_args()
    config = json.loads((args.runs[0] / "config.json").read_text())["train_config"]
    t0 = time.perf_counter()
    reading = {"text_column": None, "label_column": None, "file_format": None, "header": None}
    train, val, test = main_job.load_data(config, args.data, None, reading, t0)
    names = list(train.class_names)
    splits, scored = {"validation": val, "test": test}, {}
    for run in args.runs:
        model = load_model(run)
        scored[run.name] = {
            split: np.asarray(model.predict(ds.texts, calibrated=False)) for split, ds in splits.items()
        }
    for k in range(1, len(args.runs) + 1):
        for subset in itertools.combinations([r.name for r in args.runs], k):
            mean = {split: np.mean([scored[name][split] for name in subset], axis=0) for split in splits}
            print(scored_line(" + ".join(subset), mean, splits, names), flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
