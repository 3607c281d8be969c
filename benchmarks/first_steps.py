"""Does a model sit at chance when it starts? The training loss of its first steps, per seed and perturbation.

A preset's model (round 0, the teacher; round 1 or more, a self-training student with its
`--student` settings) trains on STEPS x 64 of IMDB's training reviews drawn at random (the
run's split, without validation) for STEPS steps, its learning-rate schedule spanning a whole epoch
of SCHEDULE_STEPS as in the run; the script prints the training loss averaged over every 25
steps. Each ARM is SEED:ADVERSARIAL (the `--adversarial` size, above 0; a self-training student's seeds
are the run's seed + round, its ensemble's members + 1000 each):

    python benchmarks/first_steps.py --data ../shared/data/imdb/aclImdb_labeled.tar.gz \
        --preset best --round 1 --steps 200 2:0.4 1002:0.4 1:0.4 1002:0.3 2:0.3

A loss of 0.693 is chance for two classes; `lstmkit.nn.adversarial.PerturbationStrength` holds
the perturbation off once a model has sat there for 200 steps. No labels of the unlabeled
reviews are used: the students' own data begins with these same labeled reviews.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lstmkit.nn import adversarial
from lstmkit.tasks.classifier import build_model
from lstmkit.tasks.fitting import _start_fresh
from lstmkit.tasks.presets import resolve, round_config
from lstmkit.tasks.run import load_data

WINDOW = 25


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/imdb/aclImdb_labeled.tar.gz")
    parser.add_argument("--preset", default="best")
    parser.add_argument("--round", type=int, default=1, help="0: the preset's first model; 1 or more: its student")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--schedule-steps", type=int, default=1133, help="steps of the epoch the schedule spans")
    parser.add_argument("arms", nargs="+", metavar="SEED:ADVERSARIAL")
    args = parser.parse_args()

    config = round_config(resolve(args.preset), args.round)
    train, _, _ = load_data(config, args.data, None, {}, time.perf_counter())
    rows = np.random.default_rng(0).permutation(len(train.texts))[: args.steps * config["batch_size"]]
    texts, labels = [train.texts[i] for i in rows], np.asarray(train.labels)[rows]
    print(f"{args.preset} round {args.round}: lstm_units {config['lstm_units']}, {len(texts):,} texts", flush=True)

    losses = []
    observe = adversarial.PerturbationStrength.observe

    def recording(self, step, mean_loss):  # every step's loss per example, as the guard sees it
        losses.append(mean_loss)
        return observe(self, step, mean_loss)

    adversarial.PerturbationStrength.observe = recording
    for arm in args.arms:
        seed, size = int(arm.split(":")[0]), float(arm.split(":")[1])
        if not size > 0:
            parser.error(f"{arm}: the loss is read where the perturbation's guard reads it; give ADVERSARIAL above 0")
        arm_config = {**config, "adversarial": size, "epochs": 1}
        model = build_model(arm_config, len(train.class_names), args.schedule_steps, class_names=train.class_names)
        _start_fresh(model, texts, None, seed, arm_config)
        losses.clear()
        t0 = time.perf_counter()
        model.fit(texts, labels, epochs=1, batch_size=config["batch_size"], seed=seed, bucket=True,
                  shuffle_buffer=None, verbose=False, progress=False, adversarial=size)  # fmt: skip
        per_window = np.array(losses[: len(losses) // WINDOW * WINDOW]).reshape(-1, WINDOW).mean(axis=1)
        shown = " ".join(f"{x:.3f}" for x in per_window)
        print(f"seed {seed} adversarial {size}: loss per {WINDOW} steps {shown} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
