"""The hand-written backward (`lstmkit.core.bptt`) against `jax.grad` of the plain scan, and finite differences.

Shape legend: B batch, T time, E input features, H hidden units, D directions.
All checks run in float64 (the `x64` fixture). The hand-written and the automatic gradients
agree to rounding, so their budget is a relative error of 1e-10 (BUDGET); centred differences
carry their own truncation and rounding error, so theirs is 1e-6 (FD_BUDGET).
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import random_lstm_problem, rel_err
from lstmkit import LSTMState, bidirectional_layer
from lstmkit.core.lstm import run_directions

# Error budgets, float64: the hand-written backward against jax.grad, and against centred differences.
BUDGET = 1e-10
FD_BUDGET = 1e-6

# (B, T, E, H, reverse per direction, lengths or None for no mask): shapes, masks, directions vary.
CASES = [
    (1, 1, 1, 1, (False,), None),
    (3, 5, 2, 4, (True,), "random"),
    (4, 9, 3, 2, (False, True), "random"),
    (5, 6, 4, 3, (True, False), None),
    (3, 4, 2, 2, (False, True), (0, 4, 1)),  # a fully padded row in the middle
]


def loss(params, x, h0, c0, mask, weights, *, reverse, backward):
    w_out, w_h, w_c = weights
    states = [LSTMState(h, c) for h, c in zip(h0, c0)]
    hs, finals = run_directions(params, x, mask, reverse=list(reverse), initial_state=states, backward=backward)
    total = 0.0
    for d in range(len(reverse)):
        total = total + jnp.sum(hs[d] * w_out[d]) + jnp.sum(finals[d].h * w_h[d]) + jnp.sum(finals[d].c * w_c[d])
    return total


@partial(jax.jit, static_argnames=("reverse", "backward"))
def grads(params, x, h0, c0, mask, weights, *, reverse, backward):
    """Gradients w.r.t. every weight, the input and the initial states."""
    return jax.grad(loss, argnums=(0, 1, 2, 3))(params, x, h0, c0, mask, weights, reverse=reverse, backward=backward)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_bptt_equals_jax_grad(case, x64):
    B, T, E, H, reverse, lengths = CASES[case]
    params, x, h0, c0, mask, weights = random_lstm_problem(case, B, T, E, H, reverse, lengths)
    g_bptt = grads(params, x, h0, c0, mask, weights, reverse=reverse, backward="bptt")
    g_auto = grads(params, x, h0, c0, mask, weights, reverse=reverse, backward="autodiff")
    leaves_bptt, tree = jax.tree.flatten(g_bptt)
    leaves_auto = tree.flatten_up_to(g_auto)
    errs = []
    for a, b in zip(leaves_bptt, leaves_auto):
        assert a.dtype == jnp.float64 and a.shape == b.shape
        assert np.all(np.isfinite(a))
        errs.append(rel_err(a, b))
    worst = max(errs)
    assert worst < BUDGET, errs
    # The gradients are not trivially zero: every weight gets a signal.
    for d in range(len(reverse)):
        for name in ("W_x", "W_h", "b"):
            assert np.any(g_bptt[0][d][name] != 0)


def test_bptt_through_bidirectional_layer_merge(x64):
    # The public wrapper with an elementwise merge: the product couples the two directions' gradients.
    params, x, _, _, mask, _ = random_lstm_problem(7, 3, 6, 2, 3, (False, True), "random")
    bi = {"forward": params[0], "backward": params[1]}
    w = jnp.asarray(np.random.default_rng(7).normal(size=(3, 6, 3)))

    def f(bi, x, backward):
        hs, (s_f, s_b) = bidirectional_layer(bi, x, mask, merge_mode="mul", backward=backward)
        return jnp.sum(hs * w) + jnp.sum(s_b.c) - jnp.sum(s_f.h)

    df = jax.jit(jax.grad(f, argnums=(0, 1)), static_argnums=2)
    g_bptt, g_auto = df(bi, x, "bptt"), df(bi, x, "autodiff")
    for a, b in zip(jax.tree.leaves(g_bptt), jax.tree.leaves(g_auto)):
        err = rel_err(a, b)
        assert err < BUDGET


def test_bptt_finite_differences(x64):
    # Centred differences (f(w + eps) - f(w - eps)) / 2 eps on a few coordinates of each argument.
    B, T, E, H, reverse = 3, 6, 3, 4, (False, True)
    params, x, h0, c0, mask, weights = random_lstm_problem(11, B, T, E, H, reverse, (6, 2, 0))
    f = jax.jit(partial(loss, reverse=reverse, backward="bptt"))
    g_params, g_x, g_h0, g_c0 = grads(params, x, h0, c0, mask, weights, reverse=reverse, backward="bptt")
    rng = np.random.default_rng(0)
    eps = 1e-6

    def check(perturb, analytic):
        numeric = (f(*perturb(+eps), mask, weights) - f(*perturb(-eps), mask, weights)) / (2 * eps)
        err = abs(float(numeric) - float(analytic)) / max(1.0, abs(float(analytic)))
        assert err < FD_BUDGET, (float(numeric), float(analytic))

    for d in range(len(reverse)):
        for name in ("W_x", "W_h", "b"):
            for _ in range(3):
                idx = tuple(int(rng.integers(n)) for n in params[d][name].shape)

                def perturb(e, d=d, name=name, idx=idx):
                    p = [dict(q) for q in params]
                    p[d][name] = p[d][name].at[idx].add(e)
                    return p, x, h0, c0

                check(perturb, g_params[d][name][idx])
    for _ in range(4):
        # Row 2 is fully padded: its input gets exactly zero gradient, and differences agree.
        idx = (int(rng.integers(B)), int(rng.integers(T)), int(rng.integers(E)))
        check(lambda e, idx=idx: (params, x.at[idx].add(e), h0, c0), g_x[idx])
    for d in range(len(reverse)):
        idx = (int(rng.integers(B)), int(rng.integers(H)))
        check(
            lambda e, d=d, idx=idx: (params, x, [h.at[idx].add(e) if k == d else h for k, h in enumerate(h0)], c0),
            g_h0[d][idx],
        )
        check(
            lambda e, d=d, idx=idx: (params, x, h0, [c.at[idx].add(e) if k == d else c for k, c in enumerate(c0)]),
            g_c0[d][idx],
        )
    # Padded steps get exactly zero input gradient.
    np.testing.assert_array_equal(g_x[2], 0.0)
    np.testing.assert_array_equal(g_x[1, 2:], 0.0)


def test_embedding_path_equals_lookup_then_layer(x64):
    # run_directions(embedding=table) projects the table once and gathers; it must equal
    # reading x = table[ids] as a dense input, in outputs and in every gradient, table included.
    B, T, E, H, V, reverse = 3, 5, 4, 3, 7, (False, True)
    params, _, h0, c0, mask, (w_out, w_h, w_c) = random_lstm_problem(21, B, T, E, H, reverse, (5, 2, 0))
    rng = np.random.default_rng(21)
    table = jnp.asarray(rng.normal(size=(V, E)))
    ids = jnp.asarray(rng.integers(0, V, size=(B, T)))
    states = [LSTMState(h, c) for h, c in zip(h0, c0)]

    def f(params, table, backward, lookup):
        if lookup:
            hs, finals = run_directions(
                params, ids, mask, reverse=list(reverse), initial_state=states, backward=backward, embedding=table
            )
        else:
            hs, finals = run_directions(
                params, table[ids], mask, reverse=list(reverse), initial_state=states, backward=backward
            )
        return sum(
            jnp.sum(hs[d] * w_out[d]) + jnp.sum(finals[d].h * w_h[d]) + jnp.sum(finals[d].c * w_c[d])
            for d in range(len(reverse))
        )

    df = jax.jit(jax.value_and_grad(f, argnums=(0, 1)), static_argnums=(2, 3))
    want = df(params, table, "autodiff", False)
    for backward in ("bptt", "autodiff"):
        got = df(params, table, backward, True)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            err = rel_err(a, b)
            assert err < BUDGET, backward
