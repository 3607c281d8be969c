"""The graph's pieces in onnxruntime against their definitions: the LSTM against the hand loop over
lstmkit's cell (gate order, both directions, right-padded rows of different lengths), the word-pair
hash against `lstmkit.nn.layers.bigram_ids`, the pooling against lstmkit's pooling layers."""

import jax.numpy as jnp
import numpy as np
import onnxruntime as ort
import pytest

from helpers import hand_loop, random_lstm_problem, right_padded_mask
from lstmkit.io.onnx_graph import INPUT, GraphBuilder
from lstmkit.nn.layers import bigram_ids
from lstmkit.nn.pooling import GlobalAveragePool, GlobalMaxPool

B, T, E, H = 4, 7, 5, 3
LENGTHS = [7, 3, 0, 5]


def _run(builder, output, ids, rank=2):
    model = builder.finish(output, rank=rank)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT: ids})[0]


def _ids(lengths, V=20, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, V, (len(lengths), T)).astype(np.int64)
    return np.where(right_padded_mask(lengths, T), ids, 0)


@pytest.mark.parametrize("reverse", [False, True])
def test_the_lstm_is_the_hand_loop_over_lstmkits_cell(reverse):
    params, _, _, _, _, _ = random_lstm_problem(1, B, T, E, H, [reverse], None)
    table = np.random.default_rng(2).normal(size=(20, E)).astype(np.float32)
    ids = _ids(LENGTHS)
    g = GraphBuilder()
    x = g.embedding(table)
    states = _run(g, g.lstm(x, [params[0]], reverse=reverse), ids)
    sequence = GraphBuilder()
    xs = sequence.embedding(table)
    steps = _run(sequence, sequence.lstm(xs, [params[0]], reverse=reverse, sequences=True), ids, rank=3)
    hs, h, _ = hand_loop(params[0], table[ids], right_padded_mask(LENGTHS, T), reverse=reverse)
    np.testing.assert_allclose(states, h, atol=1e-5)
    np.testing.assert_allclose(np.transpose(steps, (1, 0, 2)), hs, atol=1e-5)  # time-major, zero on padding
    assert np.all(h[2] == 0.0) and np.all(h[0] != 0.0)  # the empty row stays at zero, a full one moves


def test_both_directions_concatenate_forward_then_backward():
    params, _, _, _, _, _ = random_lstm_problem(3, B, T, E, H, [False, True], None)
    table = np.random.default_rng(4).normal(size=(20, E)).astype(np.float32)
    ids = _ids(LENGTHS, seed=5)
    g = GraphBuilder()
    out = _run(g, g.lstm(g.embedding(table), params), ids)
    mask = right_padded_mask(LENGTHS, T)
    _, h_fwd, _ = hand_loop(params[0], table[ids], mask)
    _, h_bwd, _ = hand_loop(params[1], table[ids], mask, reverse=True)
    np.testing.assert_allclose(out, np.concatenate([h_fwd, h_bwd], axis=-1), atol=1e-5)


def test_the_pair_hash_is_lstmkits():
    rng = np.random.default_rng(6)
    ids = np.where(right_padded_mask([7, 7, 4, 1], T), rng.integers(1, 50_000, (4, T)), 0).astype(np.int64)
    pair_table = np.arange(997, dtype=np.float32)[:, None]  # row k holds k: the graph returns the bucket
    g = GraphBuilder()
    with_pairs = g.embedding(np.zeros((50_000, 1), np.float32), pair_table)
    buckets = _run(g, with_pairs, ids, rank=3)[..., 0].T
    np.testing.assert_array_equal(buckets, np.asarray(bigram_ids(jnp.asarray(ids, jnp.int32), 997)))


@pytest.mark.parametrize("kind, layer", [("max", GlobalMaxPool()), ("mean", GlobalAveragePool())])
def test_pooling_counts_only_the_real_steps(kind, layer):
    table = np.random.default_rng(7).normal(size=(20, E)).astype(np.float32)
    ids = _ids(LENGTHS, seed=8)
    g = GraphBuilder()
    pooled = _run(g, g.pool(g.embedding(table), kind), ids)
    want, _ = layer.apply({}, jnp.asarray(table[ids]), jnp.asarray(ids != 0))
    np.testing.assert_allclose(pooled, np.asarray(want), atol=1e-6)
    assert np.all(pooled[2] == 0.0)  # a text with no token pools to zeros, not -inf
