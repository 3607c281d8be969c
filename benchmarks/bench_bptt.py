"""Time forward + backward of a BiLSTM three ways: the fused C++ loops, the hand-written BPTT in
JAX scans, and jax.grad of the plain scan.

Shape legend: B batch, T time, E input features, H hidden units.

    kernel     backward="bptt": lstmkit.core.fused, both loops in C++, one thread per direction
    bptt-scan  backward="bptt-scan": lstmkit.core.bptt's hand-written backward, as lax.scan
    autodiff   backward="autodiff": jax.grad through the forward lax.scan

All are jit-compiled, warmed up, then run alternately (kernel, bptt-scan, autodiff, kernel, ...)
so that drift in the machine's load hits all alike; the median of N runs is printed for each.

    python benchmarks/bench_bptt.py              # BiLSTM(64), B=64 x T=200, E=64, float32
    python benchmarks/bench_bptt.py -n 50 --no-mask
"""

import argparse
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from lstmkit import bidirectional_layer, init_bidirectional
from lstmkit.core import fused


def make_step(backward):
    """One jitted forward + backward: the loss and its gradients w.r.t. the weights and the input."""

    def loss(params, x, mask, w_out):
        hs, (s_f, s_b) = bidirectional_layer(params, x, mask, backward=backward)
        return jnp.sum(hs * w_out) + jnp.sum(s_f.h) + jnp.sum(s_b.h)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


def time_once(fn, *args):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return (time.perf_counter() - start) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--repeats", type=int, default=20, help="timed runs of each variant (median reported)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs of each after compiling")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--embed", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument(
        "--no-mask", action="store_true", help="all sequences full length (default: random lengths in [T/2, T])"
    )
    args = ap.parse_args()
    B, T, E, H = args.batch, args.steps, args.embed, args.hidden

    k_params, k_x, k_w, k_len = jax.random.split(jax.random.key(0), 4)
    params = init_bidirectional(k_params, E, H)
    x = jax.random.normal(k_x, (B, T, E), jnp.float32)
    w_out = jax.random.normal(k_w, (B, T, 2 * H), jnp.float32)
    lengths = jnp.full((B,), T) if args.no_mask else jax.random.randint(k_len, (B,), T // 2, T + 1)
    mask = jnp.arange(T)[None, :] < lengths[:, None]

    steps = {"kernel": make_step("bptt"), "bptt-scan": make_step("bptt-scan"), "autodiff": make_step("autodiff")}
    compile_ms, results = {}, {}
    for name, fn in steps.items():
        compile_ms[name] = time_once(fn, params, x, mask, w_out)  # first call: trace + compile + run
        for _ in range(args.warmup):
            results[name] = jax.block_until_ready(fn(params, x, mask, w_out))

    # Same numbers from all, else the timing compares different work.
    def largest_difference(name):
        pairs = zip(jax.tree.leaves(results[name]), jax.tree.leaves(results["autodiff"]))
        return max(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b))) for a, b in pairs)

    times = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, fn in steps.items():  # alternate, so load drift affects both
            times[name].append(time_once(fn, params, x, mask, w_out))

    print(
        f"BiLSTM({H}) forward+backward, B={B} x T={T}, E={E}, float32, mask={'none' if args.no_mask else 'random lengths'}"
    )
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform} ({platform.processor() or platform.machine()}), median of {args.repeats}"
    )
    for name in steps:
        t = np.asarray(times[name])
        print(
            f"  {name:10s} {np.median(t):8.2f} ms   (min {t.min():.2f}, max {t.max():.2f}; compile+first {compile_ms[name]:.0f} ms)"
        )
    for name in ("kernel", "bptt-scan"):
        ratio = np.median(times["autodiff"]) / np.median(times[name])
        print(
            f"  autodiff / {name} = {ratio:.2f}x   (largest relative difference from autodiff in loss and gradients: {largest_difference(name):.1e})"
        )
    if not fused.usable(jnp.float32, H):
        print("  note: the fused kernel is not available here, so 'kernel' ran the JAX scans too")


if __name__ == "__main__":
    main()
