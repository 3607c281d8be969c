"""Where data-parallel training stops scaling: compute per step against the gradients' all-reduce.

    python benchmarks/scaling_model.py --default-step 0.49 --best-step 0.54

A model, not a measurement: every host computes its share of one global batch, then the hosts
average their gradients with a ring all-reduce before the next step. Per step

    compute(N) = step_seconds / N                          (the global batch split over N hosts)
    allreduce(N) = 2 (N - 1) / N * bytes / bandwidth + 2 (N - 1) * latency
    speedup(N) = step_seconds / (compute(N) + allreduce(N))

with `bytes` the float32 gradients of every parameter: the embedding and word-pair tables
included, since JAX's gradient of a table is dense (every row, touched or not). The parameter
counts come from the presets' own models (`lstmkit.tasks.classifier.build_model`, no training);
`--default-step` and `--best-step` are measured steps of the whole global batch (64 texts) on one
2-core host (docs/scaling.md says which). It prints one table per preset: hosts against link speeds.
"""

import argparse

import jax
import numpy as np

from lstmkit.tasks.classifier import build_model
from lstmkit.tasks.presets import PRESETS, student_config

LINKS_GBIT = (1, 10, 25, 100)
HOSTS = (1, 2, 4, 8, 16, 32, 64)


def parameter_count(config):
    """Parameters of the classifier a config describes (binary), from shapes only."""
    model = build_model(config, 2, steps_per_epoch=1)
    shapes = jax.eval_shape(model.architecture.init_params, jax.random.key(0))
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(shapes))


def speedup(hosts, step_seconds, n_bytes, gbit, latency):
    if hosts == 1:
        return 1.0
    allreduce = 2 * (hosts - 1) / hosts * n_bytes / (gbit * 1e9 / 8) + 2 * (hosts - 1) * latency
    return step_seconds / (step_seconds / hosts + allreduce)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--default-step", type=float, default=0.49, help="seconds of one default-preset step, one host")
    parser.add_argument("--best-step", type=float, default=0.54, help="seconds of one step of best's student, one host")
    parser.add_argument("--latency-us", type=float, default=50.0, help="one message's latency, microseconds")
    args = parser.parse_args()
    models = {
        "default": (PRESETS["default"], args.default_step),
        "best (its BiLSTM(128) student)": (student_config(PRESETS["best"]), args.best_step),
        # The word-pair table is most of the gradient: the same model without it (its step is
        # taken as the default's, a little generous: the pairs cost about 15% of a step).
        "default without word pairs (--bigram-buckets 0)": (
            {**PRESETS["default"], "bigram_buckets": 0},
            args.default_step,
        ),
    }
    for name, (config, step) in models.items():
        n = parameter_count(config)
        n_bytes = 4 * n
        print(f"\n{name}: {n:,} parameters, {n_bytes / 2**20:.1f} MiB of float32 gradients per step, {step} s per step")
        print("hosts " + "".join(f"{f'{g} Gbit/s':>12}" for g in LINKS_GBIT))
        for hosts in HOSTS:
            cells = [speedup(hosts, step, n_bytes, g, args.latency_us * 1e-6) for g in LINKS_GBIT]
            print(f"{hosts:>5} " + "".join(f"{s:>11.2f}x" for s in cells))


if __name__ == "__main__":
    main()
