"""What padding costs: the default preset's training step on short texts padded to longer batches.

Builds the `default` preset's model (--hidden, --adversarial to change it), makes one batch of B
texts of about --text-length tokens (each 0.5x to 1.5x it, random ids) and runs `train_step` on
that batch padded to each T of --lengths: the same texts, the same result, only the padded width
changes. Prints the median step per T and its ratio to the first T's, so a ratio near 1 means
padded steps cost next to nothing. Run it from two checkouts to compare kernels (each script
imports the `src/` beside it); alternate the runs on a shared machine.

    python benchmarks/bench_padding.py
    python benchmarks/bench_padding.py --hidden 256 --lengths 32,128,548 --adversarial 0
    python benchmarks/bench_padding.py --lengths 32 --adversarial 0 --table-updates rows   # lazy Adam
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import jax
import numpy as np

from lstmkit.nn.steps import train_step
from lstmkit.tasks.classifier import build_model
from lstmkit.tasks.presets import resolve


def padded_batch(rng, B, text_length, T, vocabulary):
    """(B, T) ids: row b holds a text of 0.5 to 1.5 times text_length tokens (at most T), then zeros."""
    lengths = np.clip(rng.integers(text_length // 2, text_length * 3 // 2 + 1, B), 1, T)
    ids = np.zeros((B, T), np.int32)
    for b, n in enumerate(lengths):
        ids[b, :n] = rng.integers(2, vocabulary, n)
    return ids


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lengths", default="32,64,128,256,548", help="padded widths T, comma-separated; the first is the reference"
    )
    parser.add_argument("--text-length", type=int, default=20, help="mean tokens per text (each 0.5x to 1.5x)")
    parser.add_argument("--hidden", type=int, default=None, help="LSTM units (default: the preset's)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=7, help="timed steps per T after the first call")
    parser.add_argument("--adversarial", type=float, default=None, help="default: the preset's")
    parser.add_argument("--table-updates", choices=("dense", "rows"), default=None, help="default: the preset's")
    args = parser.parse_args()

    overrides = {"lstm_units": args.hidden} if args.hidden else {}
    if args.table_updates:
        overrides["table_updates"] = args.table_updates
    config = resolve("default", seed=0, **overrides)
    adversarial = config["adversarial"] if args.adversarial is None else args.adversarial
    lengths = [int(t) for t in args.lengths.split(",")]
    if args.text_length * 3 // 2 > lengths[0]:
        parser.error(f"--text-length {args.text_length}: its longest texts must fit the first length {lengths[0]}")
    model = build_model(config, 2, steps_per_epoch=400)
    rng = np.random.default_rng(0)
    model.vectorizer.adapt([" ".join(f"w{i}" for i in rng.integers(0, 20000, 300)) for _ in range(200)])
    model.build(seed=0)
    params, opt_state = model.params, model.optimizer.init(model.params)
    B, key = args.batch_size, jax.random.PRNGKey(0)
    labels, weight = rng.integers(0, 2, B).astype(np.int32), np.ones(B, np.float32)
    batch = padded_batch(rng, B, args.text_length, max(lengths), config["max_tokens"])
    tokens = int((batch > 0).sum())
    print(
        f"default preset, H = {config['lstm_units']}, B = {B}, {tokens / B:.1f} tokens per text, "
        f"adversarial {adversarial}, table updates {config['table_updates']}, jax {jax.__version__}, source {Path(__file__).resolve().parents[1]}"
    )
    reference = None
    for T in lengths:
        ids = batch[:, :T]
        times = []
        for _ in range(1 + args.steps):  # train_step donates params: carry them on (the same work)
            t0 = time.perf_counter()
            params, opt_state, loss, _ = train_step(
                model.architecture, params, opt_state, ids, labels, weight, key, adversarial, 0.0, 1.0
            )
            jax.block_until_ready(loss)
            times.append(time.perf_counter() - t0)
        step = float(np.median(times[1:]))
        reference = reference or step
        print(
            f"T={T}: median {step * 1e3:.1f} ms ({step / reference:.2f}x T={lengths[0]}), "
            f"{B * T / tokens:.2f} padded steps per token ({tokens / (B * T):.0%} real)",
            flush=True,
        )


if __name__ == "__main__":
    main()
