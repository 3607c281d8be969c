"""lstmkit.nn.lazy_adam: Adam on the embedding rows a batch read, against optax's dense Adam and a
plain NumPy loop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lstmkit.errors import LstmkitError
from lstmkit.nn.optim import apply_gradients, averaged_weights, make_optimizer

SCHEDULE = dict(schedule="cosine", total_steps=40, warmup_steps=5)


def _params(rng, rows=6):
    return [
        {"table": jnp.asarray(rng.normal(size=(rows, 3)), jnp.float32)},
        {"W": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32), "b": jnp.zeros(2, jnp.float32)},
    ]


def _grads(rng, rows, read):
    """Random gradients; the table's rows outside `read` are zero, as a batch that did not read them."""
    table = rng.normal(size=(rows, 3)) * np.isin(np.arange(rows), read)[:, None]
    return [
        {"table": jnp.asarray(table, jnp.float32)},
        {"W": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32), "b": jnp.asarray(rng.normal(size=2), jnp.float32)},
    ]


def test_it_is_dense_adam_when_every_row_is_read():
    """Every row read every step: the same steps as optax's Adam with clipping and the weight average."""
    rng = np.random.default_rng(0)
    dense = make_optimizer("adam", 0.05, clipnorm=1.0, average=0.9, **SCHEDULE)
    lazy = make_optimizer("adam", 0.05, clipnorm=1.0, average=0.9, table_updates="rows", **SCHEDULE)
    p_dense = p_lazy = _params(rng)
    s_dense, s_lazy = dense.init(p_dense), lazy.init(p_lazy)
    for _ in range(12):
        g = _grads(rng, 6, read=np.arange(6))
        p_dense, s_dense = apply_gradients(dense, g, s_dense, p_dense)
        p_lazy, s_lazy = apply_gradients(lazy, g, s_lazy, p_lazy, max_rows=6)
    for a, b in zip(jax.tree.leaves(p_dense), jax.tree.leaves(p_lazy)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    for a, b in zip(jax.tree.leaves(averaged_weights(s_dense)), jax.tree.leaves(averaged_weights(s_lazy, p_lazy))):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("max_rows", [3, None], ids=["gathered-rows", "masked-table"])
def test_unread_rows_keep_their_weights_and_the_average_stays_exact(max_rows):
    """A plain NumPy loop of lazy Adam (rows with a gradient move, their moments alone decay) and a
    dense moving average of all the weights every step: the lazy state's average must equal it,
    whether the step gathers the read rows or masks the whole table."""
    rng = np.random.default_rng(1)
    rows, lr, decay, eps = 8, 0.05, 0.9, 1e-7
    lazy = make_optimizer("adam", lr, average=decay, table_updates="rows")
    params = _params(rng, rows)
    state = lazy.init(params)
    w = np.asarray(params[0]["table"], np.float64)
    m, v, avg = np.zeros_like(w), np.zeros_like(w), w.copy()
    for n in range(25):
        read = rng.choice(rows, size=3, replace=False)
        if n % 5 == 4:
            read = read[:1]  # a step that reads one row
        g = _grads(rng, rows, read)
        params, state = apply_gradients(lazy, g, state, params, max_rows=max_rows)
        t, gt = n + 1, np.asarray(g[0]["table"], np.float64)
        for r in read:
            m[r] = 0.9 * m[r] + 0.1 * gt[r]
            v[r] = 0.999 * v[r] + 0.001 * gt[r] ** 2
            w[r] -= lr * (m[r] / (1 - 0.9**t)) / (np.sqrt(v[r] / (1 - 0.999**t)) + eps)
        d = min(decay, (1 + n) / (10 + n))
        avg = d * avg + (1 - d) * w
    np.testing.assert_allclose(params[0]["table"], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(averaged_weights(state, params)[0]["table"], avg, rtol=1e-5, atol=1e-6)


def test_max_rows_bounds_the_rows_updated_not_which():
    """max_rows is only the size of the index list: none (the whole table, masked) changes nothing."""
    rng = np.random.default_rng(2)
    lazy = make_optimizer("adam", 0.05, table_updates="rows")
    p0 = _params(rng)
    g = _grads(rng, 6, read=[1, 4])
    a, _ = apply_gradients(lazy, g, lazy.init(p0), p0, max_rows=2)
    b, _ = apply_gradients(lazy, g, lazy.init(p0), p0, max_rows=None)
    np.testing.assert_array_equal(a[0]["table"], b[0]["table"])
    moved = np.any(np.asarray(a[0]["table"]) != np.asarray(p0[0]["table"]), axis=1)
    assert moved.tolist() == [False, True, False, False, True, False]


def test_it_needs_adam_without_weight_decay():
    with pytest.raises(LstmkitError, match="table-updates rows needs"):
        make_optimizer("sgd", 0.1, table_updates="rows")
    with pytest.raises(LstmkitError, match="table-updates rows needs"):
        make_optimizer("adam", 0.1, weight_decay=0.01, table_updates="rows")
    assert isinstance(make_optimizer("adam", 0.1), optax.GradientTransformation)


def test_a_model_learns_with_lazy_table_updates():
    """fit with table_updates="rows" and a weight average: it learns the synthetic reviews, and the
    padding row, which no batch's gradient reaches, keeps its initial weights."""
    from helpers import small_model, synthetic_reviews

    train_x, train_y = synthetic_reviews(300, seed=0)
    model = small_model()
    model.vectorizer.adapt(train_x)
    model.compile(
        optimizer=make_optimizer("adam", 5e-3, average=0.99, table_updates="rows"), loss="binary_crossentropy"
    )
    model.build(seed=0)
    padding_row = np.asarray(model.params[0]["table"][0])
    history = model.fit(train_x, train_y, epochs=3, batch_size=32, validation_data=(train_x, train_y), verbose=False)
    assert history["val_accuracy"][-1] > 0.9
    np.testing.assert_array_equal(model.params[0]["table"][0], padding_row)
