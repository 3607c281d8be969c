"""The sequence layer: scan == hand loop, masks, reverse, bidirectional, stacking, errors.

Shape legend: B batch, T time, E input features, H hidden units.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import hand_loop, right_padded_mask
from lstmkit import (
    LstmkitError,
    LSTMState,
    bidirectional_layer,
    init_bidirectional,
    init_lstm,
    lstm_layer,
    lstm_stack,
)
from lstmkit.core.lstm import MERGE_MODES, merge

B, T, E, H = 4, 7, 3, 5
LENGTHS = [7, 3, 1, 5]
TOL = {"rtol": 1e-5, "atol": 1e-6}

# Jitted once per shape: eager calls would recompile the scan on every call, and these tests make
# many. Pass static options explicitly (reverse=False), so that calls share one compiled program.
layer = jax.jit(lstm_layer, static_argnames=("reverse", "backward"))
bilayer = jax.jit(bidirectional_layer, static_argnames=("merge_mode", "backward"))
stack = jax.jit(lstm_stack, static_argnames=("bidirectional", "merge_mode", "dropout_rate", "backward"))


@pytest.fixture
def data():
    k = jax.random.split(jax.random.key(0), 5)
    params = init_lstm(k[0], E, H, scheme="torch")
    x = jax.random.normal(k[1], (B, T, E))
    h0 = jax.random.normal(k[2], (B, H))
    c0 = jax.random.normal(k[3], (B, H))
    bi = init_bidirectional(k[4], E, H, scheme="torch")
    return params, bi, x, h0, c0


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_scan_equals_hand_loop(data, reverse, masked):
    params, _, x, _, _ = data
    mask = right_padded_mask(LENGTHS if masked else [T] * B, T)
    hs, state = layer(params, x, mask if masked else None, reverse=reverse)
    hs_ref, h_ref, c_ref = hand_loop(params, x, mask, reverse=reverse)
    np.testing.assert_allclose(hs, hs_ref, **TOL)
    np.testing.assert_allclose(state.h, h_ref, **TOL)
    np.testing.assert_allclose(state.c, c_ref, **TOL)


@pytest.mark.parametrize("reverse", [False, True])
def test_initial_state_is_used(data, reverse):
    params, _, x, h0, c0 = data
    mask = right_padded_mask(LENGTHS, T)
    hs, state = layer(params, x, mask, initial_state=LSTMState(h0, c0), reverse=reverse)
    hs_ref, h_ref, c_ref = hand_loop(params, x, mask, h0, c0, reverse=reverse)
    np.testing.assert_allclose(hs, hs_ref, **TOL)
    np.testing.assert_allclose(state.h, h_ref, **TOL)
    np.testing.assert_allclose(state.c, c_ref, **TOL)
    hs_zero, _ = layer(params, x, mask, reverse=reverse)
    assert not np.allclose(hs, hs_zero)


@pytest.mark.parametrize("reverse", [False, True])
def test_padded_masked_equals_unpadded(data, reverse):
    params, _, x, _, _ = data
    mask = right_padded_mask(LENGTHS, T)
    # Garbage in the padding must not leak into anything.
    x_padded = jnp.where(mask[:, :, None], x, 1e3)
    hs, state = layer(params, x_padded, mask, reverse=reverse)
    for r, n in enumerate(LENGTHS):
        hs_r, state_r = layer(params, x[r : r + 1, :n], reverse=reverse)
        np.testing.assert_allclose(hs[r, :n], hs_r[0], **TOL)
        np.testing.assert_array_equal(hs[r, n:], 0.0)
        np.testing.assert_allclose(state.h[r], state_r.h[0], **TOL)
        np.testing.assert_allclose(state.c[r], state_r.c[0], **TOL)


@pytest.mark.parametrize("merge_mode", MERGE_MODES)
def test_bidirectional_is_forward_plus_flipped_reverse(data, merge_mode):
    _, bi, x, _, _ = data
    mask = right_padded_mask(LENGTHS, T)
    hs, (s_f, s_b) = bilayer(bi, x, mask, merge_mode=merge_mode)
    for r, n in enumerate(LENGTHS):
        real = x[r : r + 1, :n]
        hs_f, st_f = layer(bi["forward"], real, reverse=False)
        # The reverse direction is a forward LSTM over the real tokens flipped, its outputs flipped back.
        hs_b_flipped, st_b = layer(bi["backward"], jnp.flip(real, axis=1), reverse=False)
        hs_b = jnp.flip(hs_b_flipped, axis=1)
        np.testing.assert_allclose(hs[r, :n], merge(hs_f, hs_b, merge_mode)[0], **TOL)
        np.testing.assert_array_equal(hs[r, n:], 0.0)
        np.testing.assert_allclose(s_f.h[r], st_f.h[0], **TOL)
        np.testing.assert_allclose(s_b.h[r], st_b.h[0], **TOL)
        np.testing.assert_allclose(s_b.c[r], st_b.c[0], **TOL)
    width = 2 * H if merge_mode == "concat" else H
    assert hs.shape == (B, T, width)


def test_reverse_reads_only_real_tokens(data):
    # The reverse direction's final state is its state after the first token, and
    # the padding (whatever it holds) never enters it.
    params, _, x, _, _ = data
    mask = right_padded_mask(LENGTHS, T)
    _, state = layer(params, x, mask, reverse=True)
    _, state_noise = layer(params, jnp.where(mask[:, :, None], x, -7.0), mask, reverse=True)
    np.testing.assert_array_equal(state.h, state_noise.h)
    r, n = 1, LENGTHS[1]
    _, state_r = layer(params, jnp.flip(x[r : r + 1, :n], axis=1), reverse=False)
    np.testing.assert_allclose(state.h[r], state_r.h[0], **TOL)


@pytest.mark.parametrize("reverse", [False, True])
def test_fully_padded_rows_return_initial_state(data, reverse):
    params, _, x, h0, c0 = data
    mask = right_padded_mask([0, 3, 0, 7], T)
    hs, state = layer(params, x, mask, initial_state=LSTMState(h0, c0), reverse=reverse)
    for r in (0, 2):
        np.testing.assert_array_equal(state.h[r], h0[r])
        np.testing.assert_array_equal(state.c[r], c0[r])
        np.testing.assert_array_equal(hs[r], 0.0)
    # All rows empty: no crash, no nan, and finite gradients.
    empty = jnp.zeros((B, T), bool)
    hs, state = layer(params, x, empty, reverse=False)
    np.testing.assert_array_equal(state.h, 0.0)
    np.testing.assert_array_equal(hs, 0.0)
    g = jax.grad(lambda p: layer(p, x, empty, reverse=reverse)[1].h.sum())(params)
    assert all(np.all(np.isfinite(v)) and np.all(v == 0) for v in g.values())


def test_bidirectional_initial_state(data):
    _, bi, x, h0, c0 = data
    mask = right_padded_mask(LENGTHS, T)
    init = (LSTMState(h0, c0), LSTMState(-h0, 0.5 * c0))
    hs, (s_f, s_b) = bilayer(bi, x, mask, initial_state=init)
    hs_f, h_f, c_f = hand_loop(bi["forward"], x, mask, h0, c0)
    hs_b, h_b, c_b = hand_loop(bi["backward"], x, mask, -h0, 0.5 * c0, reverse=True)
    np.testing.assert_allclose(hs, np.concatenate([hs_f, hs_b], -1), **TOL)
    np.testing.assert_allclose(s_f.h, h_f, **TOL)
    np.testing.assert_allclose(s_f.c, c_f, **TOL)
    np.testing.assert_allclose(s_b.h, h_b, **TOL)
    np.testing.assert_allclose(s_b.c, c_b, **TOL)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_stack_equals_layer_by_layer(data, bidirectional):
    _, _, x, _, _ = data
    mask = right_padded_mask(LENGTHS, T)
    k = jax.random.split(jax.random.key(3), 3)
    if bidirectional:
        layers = [
            init_bidirectional(k[0], E, H),
            init_bidirectional(k[1], 2 * H, H),
            init_bidirectional(k[2], 2 * H, H),
        ]
    else:
        layers = [init_lstm(k[0], E, H), init_lstm(k[1], H, H), init_lstm(k[2], H, H)]
    out, states = stack(layers, x, mask, bidirectional=bidirectional)
    y = x
    for p, s in zip(layers, states):
        if bidirectional:
            y, (s_f, s_b) = bilayer(p, y, mask)
            np.testing.assert_allclose(s[0].h, s_f.h, **TOL)
            np.testing.assert_allclose(s[1].h, s_b.h, **TOL)
        else:
            y, s_ref = layer(p, y, mask, reverse=False)
            np.testing.assert_allclose(s.h, s_ref.h, **TOL)
    np.testing.assert_allclose(out, y, **TOL)
    assert len(states) == 3


def _stack_params(bidirectional, n=2, seed=3):
    k = jax.random.split(jax.random.key(seed), n)
    D = 2 if bidirectional else 1
    init = init_bidirectional if bidirectional else init_lstm
    return [init(k[j], E if j == 0 else D * H, H, scheme="torch") for j in range(n)]


@pytest.mark.parametrize("bidirectional", [False, True])
def test_stack_initial_states_equal_the_hand_loop(data, bidirectional):
    """One initial state per layer: each layer starts from its own, as a Python loop over the cell does."""
    _, _, x, h0, c0 = data
    mask = right_padded_mask(LENGTHS, T)
    layers = _stack_params(bidirectional)
    if bidirectional:
        inits = [(LSTMState(h0, c0), LSTMState(-h0, 0.5 * c0)), (LSTMState(0.5 * h0, -c0), LSTMState(c0, h0))]
    else:
        inits = [LSTMState(h0, c0), LSTMState(-h0, 0.5 * c0)]
    out, states = stack(layers, x, mask, initial_states=inits, bidirectional=bidirectional)
    y = np.asarray(x)
    for p, init, s in zip(layers, inits, states):
        if bidirectional:
            hs_f, h_f, c_f = hand_loop(p["forward"], y, mask, *init[0])
            hs_b, h_b, c_b = hand_loop(p["backward"], y, mask, *init[1], reverse=True)
            y, want = np.concatenate([hs_f, hs_b], -1), [(h_f, c_f), (h_b, c_b)]
        else:
            y, h, c = hand_loop(p, y, mask, *init)
            s, want = [s], [(h, c)]
        for got, (h, c) in zip(s, want):
            np.testing.assert_allclose(got.h, h, **TOL)
            np.testing.assert_allclose(got.c, c, **TOL)
    np.testing.assert_allclose(out, y, **TOL)
    # None for a layer is its zeros; None for all is the stack without initial states.
    only_second, _ = stack(layers, x, mask, initial_states=[None, inits[1]], bidirectional=bidirectional)
    assert not np.allclose(only_second, stack(layers, x, mask, bidirectional=bidirectional)[0])
    zeros, _ = stack(layers, x, mask, initial_states=[None, None], bidirectional=bidirectional)
    np.testing.assert_array_equal(zeros, stack(layers, x, mask, bidirectional=bidirectional)[0])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_stack_initial_states_equal_torch(bidirectional):
    torch = pytest.importorskip("torch")
    from lstmkit.io.interop import from_torch_state_dict

    torch.manual_seed(1)
    L, D = 2, 2 if bidirectional else 1
    lstm = torch.nn.LSTM(E, H, num_layers=L, batch_first=True, bidirectional=bidirectional)
    x, h0, c0 = torch.randn(B, T, E), torch.randn(L * D, B, H), torch.randn(L * D, B, H)
    with torch.no_grad():
        out_t, (h_t, c_t) = lstm(x, (h0, c0))
    states = [LSTMState(h0[j].numpy(), c0[j].numpy()) for j in range(L * D)]
    inits = [tuple(states[D * k : D * k + D]) if bidirectional else states[k] for k in range(L)]
    layers = from_torch_state_dict(lstm.state_dict())
    out, finals = stack(layers, x.numpy(), None, initial_states=inits, bidirectional=bidirectional)
    np.testing.assert_allclose(out, out_t.numpy(), atol=1e-5)
    flat = [s for f in finals for s in (f if bidirectional else [f])]  # torch's order: layer, then direction
    np.testing.assert_allclose(np.stack([s.h for s in flat]), h_t.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.stack([s.c for s in flat]), c_t.numpy(), atol=1e-5)


def test_stack_initial_states_errors(data):
    _, _, x, h0, c0 = data
    layers = _stack_params(False)
    with pytest.raises(LstmkitError, match="one entry per layer"):
        lstm_stack(layers, x, initial_states=[LSTMState(h0, c0)])
    with pytest.raises(LstmkitError, match=r"wrap it as \[state\]"):
        lstm_stack(layers, x, initial_states=LSTMState(h0, c0))


def test_dropout_only_with_a_key(data):
    _, _, x, _, _ = data
    k = jax.random.split(jax.random.key(4), 2)
    layers = [init_lstm(k[0], E, H), init_lstm(k[1], H, H)]
    plain, _ = stack(layers, x)
    no_key, _ = stack(layers, x, dropout_rate=0.5)  # inference: no key, no dropout
    np.testing.assert_array_equal(plain, no_key)
    a, _ = stack(layers, x, dropout_rate=0.5, key=jax.random.key(9))
    b, _ = stack(layers, x, dropout_rate=0.5, key=jax.random.key(9))
    c, _ = stack(layers, x, dropout_rate=0.5, key=jax.random.key(10))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, plain)
    assert not np.allclose(a, c)


def test_clear_errors_for_wrong_shapes(data):
    params, bi, x, _, _ = data
    with pytest.raises(LstmkitError, match="batch, time, features"):
        lstm_layer(params, x[0])
    with pytest.raises(LstmkitError, match="features"):
        lstm_layer(params, jnp.ones((B, T, E + 1)))
    with pytest.raises(LstmkitError, match="mask"):
        lstm_layer(params, x, jnp.ones((B, T + 1), bool))
    with pytest.raises(LstmkitError, match="merge mode"):
        bidirectional_layer(bi, x, merge_mode="max")
    with pytest.raises(LstmkitError, match="backward"):
        lstm_layer(params, x, backward="manual")
