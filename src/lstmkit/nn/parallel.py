"""Data-parallel training across processes, on JAX's multi-process runtime (`jax.distributed`).

Each of P processes holds one CPU device and a copy of the weights. Every global batch of B
rows (the same batches, in the same order, on every process: one seed) is cut into P slices of
B / P rows; process p computes its slice's sums inside `jax.shard_map` (so the fused LSTM kernel
runs in each process as it does alone), a `psum` over the processes adds them (gloo over TCP on
CPU), and every process divides by the whole batch's weight and applies the same update:

    g = sum_p sum_{b in slice p} w_b dl_b / max(sum_b w_b, 1)

which is the gradient one process computes on the whole batch, up to float rounding. Dropout
masks and virtual adversarial directions are drawn for the whole batch from the step's key and
each process keeps its rows (`lstmkit.nn.row_random`), so runs with them are those of one process
too. Each process puts together only its rows of every batch (`gather` in `lstmkit.data.batching`).

Shape legend: P processes, B global batch, T time.

    >>> initialize("127.0.0.1:4321", 2, 0)  # doctest: +SKIP
    >>> current().processes  # doctest: +SKIP
    2
"""

from __future__ import annotations

import contextlib
import threading
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax._src import distributed as jax_runtime
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lstmkit.errors import LstmkitError
from lstmkit.nn import row_random
from lstmkit.nn.optim import apply_gradients
from lstmkit.nn.steps import batch_gradients

AXIS = "processes"
# A process silent this long is lost: `watch_peers` stops the run in one line. Long, because a
# busy machine can starve a process for tens of seconds (a dead one is seen at once: its sockets close).
PEER_SILENCE_SECONDS = 60
HEARTBEAT_SECONDS = 100  # JAX's own heartbeat (its default), the backstop: it ends a process in several lines
FINISHED = threading.Event()  # set by `finish`: the watchers stand down


def initialize(coordinator=None, num_processes=None, process_id=None, *, heartbeat_seconds=HEARTBEAT_SECONDS):
    """Join a run of several processes; before anything else touches JAX.

    coordinator: "HOST:PORT" of process 0, which serves the coordination there; None lets JAX
    detect a Slurm or Open MPI launch. CPU collectives go over gloo.
    """
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    where = {} if coordinator is None else {"coordinator_address": coordinator, "coordinator_bind_address": coordinator}
    try:
        jax.distributed.initialize(
            num_processes=num_processes,
            process_id=process_id,
            heartbeat_timeout_seconds=heartbeat_seconds,
            initialization_timeout=120,
            **where,
        )
    except (RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LstmkitError(
            f"could not join the run of {num_processes or 'the detected'} processes at {coordinator or 'the detected coordinator'} "
            f"({first}); check --coordinator, --num-processes and --process-id"
        ) from None


def current():
    """The `DataParallel` of this run, or None in a run of one process."""
    if jax.process_count() == 1:
        return None
    return DataParallel(Mesh(np.array(jax.devices()), (AXIS,)))


def is_writer():
    """True in the process that writes files (process 0, or the only one)."""
    return jax.process_index() == 0


class DataParallel:
    """The steps of one data-parallel run: batches split by rows over a mesh of every process's
    device, weights and optimizer state replicated."""

    def __init__(self, mesh):
        self.mesh = mesh
        self.rows = NamedSharding(mesh, PartitionSpec(AXIS))
        self.replicated = NamedSharding(mesh, PartitionSpec())

    @property
    def processes(self):
        return self.mesh.size

    def check_batch_size(self, batch_size):
        if batch_size % self.processes:
            raise LstmkitError(
                f"--batch-size {batch_size} does not split evenly over {self.processes} processes; "
                f"use a multiple of {self.processes}"
            )

    def local_rows(self, batch_rows):
        """The rows of a global batch this process holds: a slice."""
        starts = self.rows.addressable_devices_indices_map((batch_rows,)).values()
        index = [s[0] for s in starts]
        return slice(min(i.start or 0 for i in index), max(batch_rows if i.stop is None else i.stop for i in index))

    def start(self, params, opt_state):
        """The weights and optimizer state as arrays replicated on every process."""
        put = partial(jax.make_array_from_process_local_data, self.replicated)
        return jax.tree.map(lambda a: put(np.array(a)), (params, opt_state))

    def host(self, tree):
        """Replicated arrays as this process's own copies, for validation and checkpoints."""
        return jax.tree.map(lambda a: jnp.array(a.addressable_data(0), copy=True), tree)

    def step(self, arch, params, opt_state, batch, key, adversarial, virtual_adversarial, strength):
        """One optimizer step on the global `batch`, of which this process sends only its rows."""
        rows = self.local_rows(len(batch.weight))
        local = (batch.ids[rows], batch.labels[rows], batch.weight[rows])
        ids, labels, weight = (
            jax.make_array_from_process_local_data(self.rows, a, (len(batch.weight), *a.shape[1:])) for a in local
        )
        key_data = jax.make_array_from_process_local_data(self.replicated, np.asarray(jax.random.key_data(key)))
        strength = jax.make_array_from_process_local_data(self.replicated, np.float32(strength))
        return _parallel_step(
            arch,
            self.mesh,
            params,
            opt_state,
            ids,
            labels,
            weight,
            key_data,
            adversarial,
            virtual_adversarial,
            strength,
        )


@partial(jax.jit, static_argnums=(0, 1, 8, 9), donate_argnums=(2, 3))
def _parallel_step(
    arch, mesh, params, opt_state, ids, labels, weight, key_data, adversarial, virtual_adversarial, strength
):
    """`lstmkit.nn.steps.train_step` over a batch whose rows are split across the mesh."""

    def slice_sums(params, ids, labels, weight, key_data, strength):
        key = jax.random.wrap_key_data(key_data)  # every process's: each keeps its rows of the draws
        with row_random.sharded_rows(AXIS, mesh.size):
            loss, correct, grads = batch_gradients(
                arch, params, ids, labels, weight, key, adversarial, virtual_adversarial, strength
            )
        scale = jnp.maximum(weight.sum(), 1.0)  # each term was divided by it: undo, to add sums
        sums = (loss * scale, correct, weight.sum(), jax.tree.map(lambda g: g * scale, grads))
        return jax.lax.psum(sums, AXIS)

    rows, same = PartitionSpec(AXIS), PartitionSpec()
    loss_sum, correct, total, grad_sums = jax.shard_map(
        slice_sums,
        mesh=mesh,
        in_specs=(same, rows, rows, rows, same, same),
        out_specs=same,
        check_vma=False,  # the fused kernel's custom call carries no replication rule
    )(params, ids, labels, weight, key_data, strength)
    grads = jax.tree.map(lambda g: g / jnp.maximum(total, 1.0), grad_sums)
    params, opt_state = apply_gradients(arch.make_optimizer(), grads, opt_state, params, max_rows=ids.size)
    return params, opt_state, loss_sum, correct


def barrier(name):
    """Wait here until every process of the run arrives (nothing to wait for in a run of one)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def finish(hours=24):
    """Wait until every process has finished its part (process 0 tests and saves after the last
    epoch), so that they leave JAX's runtime together; `watch_peers` still stops a lost run."""
    if jax.process_count() > 1:
        jax_runtime.global_state.client.wait_at_barrier("lstmkit: finished", int(hours * 3600 * 1000))
    FINISHED.set()


def watch_peers(on_lost, *, every=1.0, silence=PEER_SILENCE_SECONDS):
    """Call on_lost(message) when a process of the run goes silent, dead or hung, or the
    coordinator can no longer be reached; from two daemon threads.

    A dead process breaks its TCP connections and the next collective fails at once, but a hung
    one (or a host that drops off the network) may leave gloo waiting for ever: so every process
    counts up a key of its own in the coordination service's key-value store every `every`
    seconds, and one whose count stops for `silence` seconds is lost. JAX has no public handle on
    that store, hence `jax._src.distributed`.
    """
    client, me, n = jax_runtime.global_state.client, jax.process_index(), jax.process_count()
    heard = {p: (None, time.monotonic()) for p in range(n) if p != me}  # process -> (count, when it changed)
    reached = [time.monotonic()]  # when this process last reached the coordinator

    def lost(message):
        if not FINISHED.is_set():  # after `finish`, process 0 leaving is no loss
            on_lost(message)

    def beat():
        count = 0
        while not FINISHED.is_set():
            count += 1
            try:
                client.key_value_set(f"lstmkit/alive/{me}", str(count), allow_overwrite=True)
                for p, (seen, _) in list(heard.items()):
                    with contextlib.suppress(Exception):  # not there yet: the peer is still starting
                        value = client.key_value_try_get(f"lstmkit/alive/{p}")
                        if value != seen:
                            heard[p] = (value, time.monotonic())
            except Exception as e:  # any failure to reach the coordinator ends the run
                lost(f"lost the coordinator of the run ({str(e).strip().splitlines()[0][:160]}); stopping")
                return
            reached[0] = time.monotonic()
            time.sleep(every)

    def judge():
        while not FINISHED.is_set():
            time.sleep(every)
            now = time.monotonic()
            if now - reached[0] > silence:
                lost(f"the coordinator of the run has not answered for {silence:.0f} s; stopping")
            for p, (_, when) in list(heard.items()):
                if now - when > silence:
                    lost(f"process {p} of {n} has been silent for {silence:.0f} s (dead or hung); stopping")

    for target in (beat, judge):
        threading.Thread(target=target, daemon=True, name=f"lstmkit-{target.__name__}").start()
