"""Where adversarial training's extra time goes: a training step of the default preset's model with and
without `--adversarial`, and the parts of the adversarial step timed alone, on short random texts.

Shape legend: B batch, T time (tokens per text).

The model is `tasks.classifier.build_model` of the default preset (bigram vectors, BiLSTM(64),
max-and-mean pooling, its optimizer); the batches are random ids, B x T with T about a short
text's length, every token real. Every part is jitted, compiled and warmed up, then all are run
in turn, round after round, and the median of each is printed, wall-clock and CPU time (the
machine is shared: CPU time, the work done, varies less with what else runs):

    plain step        nn.steps.train_step, adversarial 0
    adversarial step  nn.steps.train_step, adversarial 0.4 (the default preset's)
    clean gradients   jax.value_and_grad of the loss: what the plain step differentiates
    clean + d_embedded  the same, also differentiated in the perturbation (the first pass of the adversarial step)
    both passes       nn.steps.batch_gradients with adversarial 0.4: the two passes and their sum
    both passes, whole  the same written out here, each pass differentiated in every parameter (the
                      Embedding's tables twice) and the two added: what the step does, or a copy of it
    optimizer         the optimizer's update and its application, alone
    sum of gradients  the two passes' gradients added (a pass over every parameter)
    embedding gradient  the Embedding's tables' gradient from one pass (zeros, then the B x T rows added)

    python benchmarks/bench_adversarial.py                 # B=64, T=24
    python benchmarks/bench_adversarial.py --time 200 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from lstmkit.nn import adversarial, steps
from lstmkit.tasks.classifier import build_model
from lstmkit.tasks.presets import DEFAULT


def timed(fn, *args):
    """(wall-clock ms, CPU ms of all the process's threads) of one call."""
    start, start_cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn(*args))
    return (time.perf_counter() - start) * 1e3, (time.process_time() - start_cpu) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--time", type=int, default=24, help="tokens per text (a short text's length)")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    B, T = args.batch, args.time
    epsilon = DEFAULT["adversarial"]
    model = build_model(DEFAULT, 2, steps_per_epoch=100, class_names=["neg", "pos"])
    arch = model.architecture
    params = model.build(seed=0)
    opt_state = arch.make_optimizer().init(params)
    rng = np.random.default_rng(0)
    ids = jnp.asarray(rng.integers(2, DEFAULT["max_tokens"], (B, T)), jnp.int32)
    labels = jnp.asarray(rng.integers(0, 2, B), jnp.int32)
    weight = jnp.ones((B,), jnp.float32)
    key = jax.random.key(1)

    state = {}

    def step_with(adversarial):
        # The train step donates params and state: each variant carries its own copy along.
        state[adversarial] = jax.tree.map(jnp.copy, (params, opt_state))

        def run():
            new_params, new_state, loss, _ = steps.train_step(
                arch, *state[adversarial], ids, labels, weight, key, adversarial, 0.0, 1.0
            )
            state[adversarial] = (new_params, new_state)
            return loss

        return run

    clean = jax.jit(lambda p: jax.value_and_grad(arch.loss_fn, has_aux=True)(p, ids, labels, weight, key))
    zeros = jnp.zeros((B, T, DEFAULT["embedding_dim"]), jnp.float32)
    clean_and_input = jax.jit(
        lambda p: jax.value_and_grad(arch.loss_fn, argnums=(0, 5), has_aux=True)(p, ids, labels, weight, key, zeros)
    )
    both = jax.jit(lambda p: steps.batch_gradients(arch, p, ids, labels, weight, key, epsilon, 0.0, 1.0))

    def each_whole(params):  # the two passes, each differentiated in every parameter (the tables twice), added
        embedded, mask = adversarial.embedded_inputs(arch, params, ids)
        grad_fn = jax.value_and_grad(arch.loss_fn, argnums=(0, 5), has_aux=True)
        (loss, _), (grads, d_embedded) = grad_fn(params, ids, labels, weight, key, jnp.zeros_like(embedded))
        r_adv = adversarial.adversarial_perturbation(d_embedded, embedded, mask, epsilon)
        adv_grads = jax.grad(lambda p: arch.loss_fn(p, ids, labels, weight, key, r_adv)[0])(params)
        return loss, jax.tree.map(jnp.add, grads, adv_grads)

    grads = clean(params)[1]

    index = adversarial.embedding_index(arch)
    d_embedded = jnp.asarray(rng.normal(size=zeros.shape), jnp.float32)

    def embedding_sum(table_params, ids, d_embedded):  # its gradient: the tables' gradient from one pass
        embedded, _ = arch.layers[index].apply(table_params, ids, None, key=key)
        return jnp.sum(embedded * d_embedded)

    def update(grads, opt_state, params):
        updates, opt_state = arch.make_optimizer().update(grads, opt_state, params)
        return jax.tree.map(lambda p, u: p + u, params, updates), opt_state

    parts = {
        "plain step": (step_with(0.0),),
        "adversarial step": (step_with(epsilon),),
        "clean gradients": (clean, params),
        "clean + d_embedded": (clean_and_input, params),
        "both passes": (both, params),
        "both passes, whole": (jax.jit(each_whole), params),
        "optimizer": (jax.jit(update), grads, opt_state, params),
        "sum of gradients": (jax.jit(lambda a, b: jax.tree.map(jnp.add, a, b)), grads, grads),
        "embedding gradient": (jax.jit(jax.grad(embedding_sum)), params[index], ids, d_embedded),
    }
    first_call = {}
    for name, (fn, *inputs) in parts.items():
        first_call[name] = timed(fn, *inputs)  # trace and compile, then run
        for _ in range(2):  # warm up
            timed(fn, *inputs)
    times = {name: [] for name in parts}
    for _ in range(args.rounds):
        for name, (fn, *inputs) in parts.items():  # in turn, so drift in the machine's load hits all alike
            times[name].append(timed(fn, *inputs))
    n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
    print(f"default preset's model ({n_params:,} parameters), B={B}, T={T}, adversarial {epsilon}")
    print(f"  {'':<20} {'wall ms: median [min-max]':>30}   {'CPU ms (all threads): median':>30}")
    plain = statistics.median(cpu for _, cpu in times["plain step"])
    for name, pairs in times.items():
        wall, cpu = zip(*pairs)
        cells = f"{statistics.median(wall):8.1f} [{min(wall):.1f}-{max(wall):.1f}]"
        print(
            f"  {name:<20} {cells:>30}   {statistics.median(cpu):12.1f} = {statistics.median(cpu) / plain:4.2f}x plain step"
        )
    for name in ("plain step", "adversarial step"):  # paid once per batch shape (length bucket) a run meets
        wall, cpu = first_call[name]
        print(f"  first call (trace, compile, run) of the {name}: {wall / 1e3:.2f} s wall, {cpu / 1e3:.2f} s CPU")


if __name__ == "__main__":
    main()
