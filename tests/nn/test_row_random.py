"""Row-split random draws: P shards of a batch, each drawing its rows, give the one draw over the
whole batch (what makes dropout across processes equal to one process); outside, JAX's own draw."""

import jax
import jax.numpy as jnp
import numpy as np

from lstmkit.nn import row_random


def test_shards_put_together_are_the_whole_batchs_draw():
    key, processes, rows = jax.random.key(7), 3, 2

    def shard(_):  # vmap's named axis stands for shard_map's: axis_index is each shard's position
        return (
            row_random.bernoulli(key, 0.5, (rows, 5, 2)),
            row_random.normal(key, (rows, 4), jnp.float32),
        )

    with row_random.sharded_rows("p", processes):  # one jitted trace: quicker than op by op
        masks, normals = jax.jit(jax.vmap(shard, axis_name="p"))(jnp.arange(processes))
    whole_masks = jax.random.bernoulli(key, 0.5, (rows * processes, 5, 2))
    whole_normals = jax.random.normal(key, (rows * processes, 4), jnp.float32)
    np.testing.assert_array_equal(np.asarray(masks).reshape(whole_masks.shape), whole_masks)
    np.testing.assert_array_equal(np.asarray(normals).reshape(whole_normals.shape), whole_normals)
    assert 0 < float(whole_masks.mean()) < 1  # a draw, not a constant


def test_outside_a_sharded_step_it_is_jaxs_draw():
    key = jax.random.key(3)
    np.testing.assert_array_equal(row_random.bernoulli(key, 0.3, (4, 6)), jax.random.bernoulli(key, 0.3, (4, 6)))
    with row_random.sharded_rows("p", 1):
        np.testing.assert_array_equal(row_random.normal(key, (2, 3), jnp.float32), jax.random.normal(key, (2, 3)))
