"""What one more batch shape costs: the default preset's training step compiled and run per length T.

Builds the `default` preset's model (adversarial training as the preset has it, or --adversarial),
then for each T runs `train_step` on a (B, T) batch of random ids a few times: the first call
compiles the step for that shape, the rest are its steady cost. Prints per T the first call, the
median step and the cost per padded step (B x T), from which `lstmkit.data.lengths.COMPILE_STEPS`
(the padded steps one compilation is worth) is read. Run it with LSTMKIT_COMPILE_CACHE unset:
the step is jitted here, not loaded from lstmkit's compile cache.

    python benchmarks/bench_compile_cost.py
    python benchmarks/bench_compile_cost.py --lengths 16,64,256 --adversarial 0
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="16,32,64,128,256,548", help="the T to compile, comma-separated")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per T after the first call")
    parser.add_argument("--adversarial", type=float, default=None, help="default: the preset's")
    args = parser.parse_args()

    config = resolve("default", seed=0)
    adversarial = config["adversarial"] if args.adversarial is None else args.adversarial
    model = build_model(config, 2, steps_per_epoch=400)
    rng = np.random.default_rng(0)
    model.vectorizer.adapt([" ".join(f"w{i}" for i in rng.integers(0, 20000, 300)) for _ in range(200)])
    model.build(seed=0)
    opt_state = model.optimizer.init(model.params)
    B, key = args.batch_size, jax.random.PRNGKey(0)
    labels, weight = rng.integers(0, 2, B).astype(np.int32), np.ones(B, np.float32)
    print(f"default preset, B = {B}, adversarial {adversarial}, jax {jax.__version__}")
    for T in (int(t) for t in args.lengths.split(",")):
        ids = rng.integers(2, 10000, (B, T)).astype(np.int32)
        times = []
        for _ in range(1 + args.steps):
            t0 = time.perf_counter()
            model.params, opt_state, loss, _ = train_step(
                model.architecture, model.params, opt_state, ids, labels, weight, key, adversarial, 0.0, 1.0
            )
            jax.block_until_ready(loss)
            times.append(time.perf_counter() - t0)
        step = float(np.median(times[1:]))
        print(
            f"T={T}: first call {times[0] * 1e3:,.0f} ms, then median {step * 1e3:.1f} ms, "
            f"{step / (B * T) * 1e6:.1f} us per padded step",
            flush=True,
        )


if __name__ == "__main__":
    main()
