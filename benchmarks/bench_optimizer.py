"""What one optimizer step costs on the default preset's tables: dense Adam against lazy Adam.

Builds the default preset's embedding tables (10,000 words and 100,000 word pairs, 128 wide)
and a (192, 256) weight for the rest, and times one jitted step of each --table-updates mode
(Adam, clipping, the cosine schedule and the weight average, as the preset's) on a gradient that
is non-zero on U rows of the pair table (U random rows, their ids mod 10,000 in the word table), built in the step as the model's
backward builds it (dense, zero outside those rows):
U is the B x T tokens of a batch, so 64 x 24 for short texts, 64 x 288 to 64 x 800 for IMDB's.
The modes alternate within each of --rounds rounds; it prints the median per mode and U.

    python benchmarks/bench_optimizer.py
    python benchmarks/bench_optimizer.py --rows 1536,18432,51200 --rounds 3
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import jax
import jax.numpy as jnp
import numpy as np

from lstmkit.nn.optim import apply_gradients, make_optimizer
from lstmkit.tasks.presets import DEFAULT


def step_time(mode, U, steps):
    """Median seconds of one optimizer step in `mode` with U rows read."""
    E, words, pairs = DEFAULT["embedding_dim"], DEFAULT["max_tokens"], DEFAULT["bigram_buckets"]
    params = [{"table": jnp.zeros((words, E)), "bigram_table": jnp.zeros((pairs, E))}, {"W": jnp.zeros((192, 256))}]
    optimizer = make_optimizer(
        "adam",
        DEFAULT["learning_rate"],
        clipnorm=DEFAULT["clipnorm"],
        schedule=DEFAULT["schedule"],
        total_steps=700,
        warmup_steps=DEFAULT["warmup_steps"],
        average=DEFAULT["weight_average"],
        table_updates=mode,
    )
    state = optimizer.init(params)
    ids = jnp.asarray(np.random.default_rng(0).choice(pairs, U, replace=False))

    @partial(jax.jit, donate_argnums=(0, 1))
    def step(params, state, ids):  # ids an argument: as constants XLA would fold the gradients away
        grads = [
            {
                "table": jnp.zeros((words, E)).at[ids % words].add(1e-3),
                "bigram_table": jnp.zeros((pairs, E)).at[ids].add(1e-3),
            },
            {"W": jnp.full((192, 256), 1e-3)},
        ]  # as the model's backward writes them: dense arrays, zero outside the rows read
        return apply_gradients(optimizer, grads, state, params, max_rows=U)

    for _ in range(2):  # compile, warm up
        params, state = step(params, state, ids)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        params, state = step(params, state, ids)
        jax.block_until_ready(params)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1536,18432,51200", help="U: rows read per step, comma-separated")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=15, help="timed steps per mode and U each round")
    args = parser.parse_args()
    sizes = [int(u) for u in args.rows.split(",")]
    print(f"jax {jax.__version__}; median ms of one step per round, modes alternating", flush=True)
    results = {(mode, U): [] for U in sizes for mode in ("dense", "rows")}
    for _ in range(args.rounds):
        for U in sizes:
            for mode in ("dense", "rows"):
                results[mode, U].append(step_time(mode, U, args.steps) * 1e3)
    for U in sizes:
        dense, rows = (results[m, U] for m in ("dense", "rows"))
        print(
            f"U={U}: dense {' / '.join(f'{t:.1f}' for t in dense)} ms, rows {' / '.join(f'{t:.1f}' for t in rows)} ms; "
            f"dense / rows {np.median(dense) / np.median(rows):.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
