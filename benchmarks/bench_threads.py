"""Time an LSTM training step of the fused kernel on one core against two (`taskset`), alternating.

Shape legend: B batch, T time, E input features, H hidden units.

Two worker processes run the same jitted step (forward + backward of an LSTM layer over a dense
(B, T, E) input, a loss on every output), one under `taskset -c C0` and one under
`taskset -c C0,C1` (the first two CPUs this process may use), so the kernel sizes its thread pool
from each one's affinity as it would for a user. Both compile and warm up, then the parent asks
them in turn for a few timed steps (one core, two cores, one core, ...), a unidirectional layer
and then a bidirectional one in every round, so that drift in the machine's load hits all alike.
It prints the median step of each, the ratio one core / two cores, and the CPU time a step
used (all threads): when the machine is busy with other work the wall-clock ratio says little, and
equal CPU times at least show that splitting the rows added no work.

    python benchmarks/bench_threads.py                 # LSTM(128) and BiLSTM(128), B=64, T=200, E=128
    python benchmarks/bench_threads.py --rounds 4 --steps 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

MODELS = ("lstm", "bilstm")


def worker(B, T, E, H):
    """Compiles both steps, says so, then times `steps` of a model per line read: 'MODEL STEPS'."""
    import jax
    import jax.numpy as jnp

    from lstmkit import init_lstm
    from lstmkit.core import fused
    from lstmkit.core.lstm import run_directions

    threads = fused.set_threads()  # LSTMKIT_THREADS, else the affinity taskset gave this process
    k_x, k_w, *k_params = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(k_x, (B, T, E), jnp.float32)
    mask = jnp.ones((B, T), bool)
    steps = {}
    for name, reverse in (("lstm", [False]), ("bilstm", [False, True])):
        params = [init_lstm(k, E, H) for k in k_params[: len(reverse)]]
        w_out = jax.random.normal(k_w, (len(reverse), B, T, H), jnp.float32)

        def loss(params, x, mask, w_out, reverse=reverse):  # arrays as arguments: XLA folds no constants
            hs, _ = run_directions(params, x, mask, reverse=reverse)
            return sum(jnp.sum(h * w) for h, w in zip(hs, w_out))

        step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        for _ in range(2):  # compile, then warm the caches and the allocator
            jax.block_until_ready(step(params, x, mask, w_out))
        steps[name] = (step, (params, x, mask, w_out))
    print(json.dumps({"ready": True, "threads": threads}), flush=True)
    for line in sys.stdin:
        name, n = line.split()
        step, arguments = steps[name]
        times, cpu = [], []
        for _ in range(int(n)):
            start, start_cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(step(*arguments))
            times.append((time.perf_counter() - start) * 1e3)
            cpu.append((time.process_time() - start_cpu) * 1e3)
        print(json.dumps({"ms": times, "cpu_ms": cpu}), flush=True)


def start_worker(cpus, args):
    command = [
        *(["taskset", "-c", ",".join(map(str, cpus))]),
        sys.executable,
        __file__,
        "--worker",
        *(
            "--batch",
            str(args.batch),
            "--time",
            str(args.time),
            "--embed",
            str(args.embed),
            "--hidden",
            str(args.hidden),
        ),
    ]
    env = {k: v for k, v in os.environ.items() if k != "LSTMKIT_THREADS"}  # the affinity decides
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


def ask(process, request):
    process.stdin.write(request + "\n")
    process.stdin.flush()
    return json.loads(process.stdout.readline())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians over all their steps)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per model, worker and round")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--time", type=int, default=200)
    ap.add_argument("--embed", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.batch, args.time, args.embed, args.hidden)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or not shutil.which("taskset"):
        sys.exit("bench_threads: needs two CPUs in this process's affinity and the taskset program")
    started = time.perf_counter()
    workers = {"1 core": start_worker(cpus[:1], args), "2 cores": start_worker(cpus[:2], args)}
    threads = {where: json.loads(p.stdout.readline())["threads"] for where, p in workers.items()}
    print(f"compiled and warm in {time.perf_counter() - started:.1f} s; kernel threads: {threads}", flush=True)
    times = {(model, where): [] for model in MODELS for where in workers}
    cpu = {key: [] for key in times}
    for round_ in range(args.rounds):
        for model in MODELS:
            for where, process in workers.items():
                answer = ask(process, f"{model} {args.steps}")
                times[model, where] += answer["ms"]
                cpu[model, where] += answer["cpu_ms"]
        done = ", ".join(f"{m} {w} {statistics.median(t):.0f}" for (m, w), t in times.items())
        print(f"round {round_ + 1}: medians so far (ms) {done}", flush=True)
    for process in workers.values():
        process.stdin.close()
        process.wait()
    B, T, E, H = args.batch, args.time, args.embed, args.hidden
    print(f"training step (forward + backward), B={B}, T={T}, E={E}, H={H}, float32; median ms [min-max]:")
    for model in MODELS:
        one, two = (times[model, where] for where in workers)
        cells = [f"{statistics.median(t):7.1f} [{min(t):.0f}-{max(t):.0f}]" for t in (one, two)]
        ratio = statistics.median(one) / statistics.median(two)
        print(f"  {model:<7} 1 core {cells[0]}   2 cores {cells[1]}   speed-up {ratio:.2f}x")
        one_cpu, two_cpu = (statistics.median(cpu[model, where]) for where in workers)
        print(f"  {'':<7} CPU time per step (all threads): 1 core {one_cpu:.1f} ms, 2 cores {two_cpu:.1f} ms")
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
