"""Data-parallel steps (`lstmkit.nn.parallel`) in this one process: over a mesh of its one device,
a step is `train_step`'s, and the fused kernel runs inside it. Runs of several real processes
are in tests/cli/test_train_processes.py."""

import jax
import numpy as np

from helpers import small_model, synthetic_reviews
from lstmkit.nn import parallel
from lstmkit.nn.batches import training_batches
from lstmkit.nn.steps import train_step
from lstmkit.nn.train import training_data


def _model_and_batch():
    texts, labels = synthetic_reviews(40, seed=1)
    model = small_model()
    model.compile(learning_rate=0.01)
    model.vectorizer.adapt(texts)
    model.build(seed=0)
    ids, y, _, _ = training_data(model, texts, labels)
    batch = next(iter(training_batches(model, ids, y, 16, seed=0, shuffle=True, bucket=True)))
    return model, batch


def test_a_step_over_one_process_is_train_step_and_runs_the_kernel():
    model, batch = _model_and_batch()
    arch, key = model.architecture, jax.random.key(3)
    steps = parallel.DataParallel(jax.sharding.Mesh(np.array(jax.devices()[:1]), (parallel.AXIS,)))
    copy = lambda tree: jax.tree.map(np.array, tree)
    want = train_step(
        arch, copy(model.params), arch.make_optimizer().init(model.params), batch.ids, batch.labels, batch.weight, key
    )
    params, opt_state = steps.start(copy(model.params), arch.make_optimizer().init(model.params))
    got = steps.step(arch, params, opt_state, batch, key, 0.0, 0.0, 1.0)
    for w, g in zip(jax.tree.leaves(want[0]), jax.tree.leaves(steps.host(got[0]))):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-7)
    assert float(got[2]) == np.float32(want[2])  # the batch's summed loss
    assert float(got[3]) == float(want[3])  # and its correct count
    assert steps.local_rows(16) == slice(0, 16)

    program = parallel._parallel_step.lower(
        arch,
        steps.mesh,
        *steps.start(copy(model.params), arch.make_optimizer().init(model.params)),
        batch.ids,
        batch.labels,
        batch.weight,
        jax.random.key_data(key),
        0.0,
        0.0,
        np.float32(1.0),
    ).as_text()
    assert "lstmkit_recurrence_forward" in program and "lstmkit_recurrence_backward" in program


def test_one_process_is_not_parallel():
    assert parallel.current() is None and parallel.is_writer()
    parallel.barrier("nothing to wait for")  # returns at once in a run of one
