"""The fused C++ recurrence (`lstmkit.core.fused`) against the JAX scans of `lstmkit.core.bptt`, in float32.

Shape legend: B batch, T time, E input features, V table rows, H hidden units, D directions.
The kernel computes the same equations in float32 with its own tanh (absolute error about 1e-7),
so outputs and gradients are compared with tolerances a few float32 ulps wide, not bit for bit.
The reference gradients are `jax.grad` of the plain scan (`backward="autodiff"`), so this also
checks the C++ backward against automatic differentiation of the forward.
"""

import contextlib
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import random_lstm_problem
from lstmkit import init_lstm
from lstmkit.core import fused
from lstmkit.core.lstm import lstm_layer, run_directions
from lstmkit.errors import LstmkitError

pytestmark = pytest.mark.skipif(
    not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")),
    reason="no C++ compiler: lstmkit runs its JAX scans instead of the fused kernel",
)

# (B, T, E, H, reverse per direction, lengths): remainders of the 6-row GEMM blocks (B = 1, 7),
# H = 8, 24 (a column tail of 8), 32 (full 32-column blocks), masks with holes and empty rows.
CASES = [
    (1, 1, 3, 8, (False,), None),
    (7, 9, 5, 24, (True,), "random"),
    (6, 12, 4, 16, (False, True), "random"),
    (13, 17, 12, 32, (False, True), "holes"),
    (4, 5, 3, 8, (True, False), (0, 5, 1, 3)),
]


def run(params, x, h0, c0, mask, weights, reverse, backward, table=None):
    """A loss over every output (all steps' h, the final h and c), and the outputs themselves."""
    states = [(h, c) for h, c in zip(h0, c0)]
    hs, finals = run_directions(
        params, x, mask, reverse=list(reverse), initial_state=states, backward=backward, embedding=table
    )
    w_out, w_h, w_c = weights
    total = sum(
        jnp.sum(hs[d] * w_out[d]) + jnp.sum(finals[d].h * w_h[d]) + jnp.sum(finals[d].c * w_c[d])
        for d in range(len(reverse))
    )
    return total, (hs, finals)


def value_and_grads(backward, params, x, h0, c0, mask, weights, reverse, table=None):
    argnums = (0, 2, 3, 6) if table is not None else (0, 1, 2, 3)
    f = jax.value_and_grad(
        lambda p, x, h0, c0, m, w, t: run(p, x, h0, c0, m, w, reverse, backward, t), argnums=argnums, has_aux=True
    )
    return jax.jit(f)(params, x, h0, c0, mask, weights, table)


def assert_close(a, b, what):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        scale = max(1.0, float(jnp.max(jnp.abs(y))))
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=2e-5 * scale, err_msg=what)


def test_kernel_builds_and_registers():
    assert fused.available(), fused._state.get("error")
    assert fused.usable(jnp.float32, 64)
    assert not fused.usable(jnp.float64, 64)  # float64 (the gradient checks) runs the scans
    assert not fused.usable(jnp.float32, 12)  # H not a multiple of 8 too


@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"B{c[0]}-T{c[1]}-H{c[3]}-{'+'.join('rev' if r else 'fwd' for r in c[4])}-{c[5]}"
)
@pytest.mark.parametrize("input_kind", ["dense", "table"])
def test_fused_equals_jax_grad_of_the_scan(case, input_kind):
    B, T, E, H, reverse, lengths = case
    V = 11 if input_kind == "table" else None
    params, x, h0, c0, mask, weights = random_lstm_problem(CASES.index(case), B, T, E, H, reverse, lengths, V)
    table = jnp.asarray(np.random.default_rng(1).normal(size=(V, E)), jnp.float32) if V else None
    (loss_k, out_k), grads_k = value_and_grads("bptt", params, x, h0, c0, mask, weights, reverse, table)
    (loss_a, out_a), grads_a = value_and_grads("autodiff", params, x, h0, c0, mask, weights, reverse, table)
    assert_close(out_k, out_a, "forward outputs")
    assert_close(loss_k, loss_a, "loss")
    assert_close(grads_k, grads_a, "gradients")


def test_the_kernel_is_what_runs():
    """Proof that the comparison above compares two implementations: the fused custom call is in
    the compiled step for "bptt", and absent for "autodiff"."""
    params, x, h0, c0, mask, weights = random_lstm_problem(0, 4, 6, 3, 8, (False, True), "random")

    def hlo(backward):
        f = jax.grad(lambda p: run(p, x, h0, c0, mask, weights, (False, True), backward)[0])
        return jax.jit(f).lower(params).as_text()

    assert "lstmkit_recurrence_forward" in hlo("bptt") and "lstmkit_recurrence_backward" in hlo("bptt")
    assert "lstmkit_recurrence" not in hlo("autodiff")


def test_prediction_skips_the_residuals_and_agrees():
    """Undifferentiated, the forward writes no residuals; its outputs equal the training forward's."""
    params, x, h0, c0, mask, weights = random_lstm_problem(3, 9, 14, 5, 16, (False, True), "random")
    plain = jax.jit(lambda p: run(p, x, h0, c0, mask, weights, (False, True), "bptt")[1])(params)
    (_, trained), _ = value_and_grads("bptt", params, x, h0, c0, mask, weights, (False, True))
    assert_close(plain, trained, "forward without and with residuals")
    text = jax.jit(lambda p: run(p, x, h0, c0, mask, weights, (False, True), "bptt")[1]).lower(params).as_text()
    assert "tensor<0xf32>" in text  # the residual outputs are empty


def test_saturated_gates_stay_finite_and_nan_propagates():
    H = 8
    p = init_lstm(jax.random.key(0), 2, H)
    x = jnp.asarray([[[1e4, -1e4], [-3e3, 50.0], [0.0, 0.0]]], jnp.float32)  # pre-activations far past saturation
    hs, (state,) = run_directions([p], x, reverse=[False])
    ref, (ref_state,) = run_directions([p], x, reverse=[False], backward="autodiff")
    assert np.all(np.isfinite(np.asarray(hs[0])))
    assert_close(hs, ref, "saturated forward")
    bad = x.at[0, 1, 0].set(jnp.nan)
    hs_nan, _ = run_directions([p], bad, reverse=[False])
    assert np.isnan(np.asarray(hs_nan[0][0, 1:])).all()  # a NaN is not hidden by the clamp


def test_float64_and_odd_sizes_use_the_scans():
    """What the kernel does not cover still runs (on the scans) and agrees with the reference."""
    params, x, h0, c0, mask, weights = random_lstm_problem(5, 3, 4, 2, 12, (False,), "random")  # H = 12
    (loss_k, _), grads_k = value_and_grads("bptt", params, x, h0, c0, mask, weights, (False,))
    (loss_a, _), grads_a = value_and_grads("autodiff", params, x, h0, c0, mask, weights, (False,))
    assert_close(grads_k, grads_a, "H = 12")
    text = jax.jit(lambda p: run(p, x, h0, c0, mask, weights, (False,), "bptt")[0]).lower(params).as_text()
    assert "lstmkit_recurrence" not in text


def test_kernel_off_by_environment(monkeypatch):
    monkeypatch.setenv("LSTMKIT_KERNEL", "0")
    assert not fused.usable(jnp.float32, 64)
    p = init_lstm(jax.random.key(0), 3, 8)
    x = jnp.ones((2, 4, 3), jnp.float32)
    text = jax.jit(lambda p: lstm_layer(p, x)[0]).lower(p).as_text()
    assert "lstmkit_recurrence" not in text


def test_build_is_cached_and_atomic(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTMKIT_HOME", str(tmp_path))
    library = fused.build()
    assert library.parent == tmp_path / "kernels" and library.stat().st_size > 0
    mtime = library.stat().st_mtime_ns
    assert fused.build() == library and library.stat().st_mtime_ns == mtime  # reused, not rebuilt
    assert sorted(p.name for p in (tmp_path / "kernels").iterdir()) == [
        library.name,
        library.name + ".sha256",
    ]  # no temporary file left
    size, digest = (tmp_path / "kernels" / (library.name + ".sha256")).read_text().split()
    assert int(size) == library.stat().st_size and len(digest) == 64


def test_every_header_the_kernel_includes_is_part_of_its_cache_key():
    """An edit to any file of kernels/ rebuilds the library: each header SOURCE includes is hashed."""
    included = set(re.findall(r'#include "([^"/]+)"', "".join(p.read_text() for p in (fused.SOURCE, *fused.HEADERS))))
    assert included == {header.name for header in fused.HEADERS}
    assert {p.name for p in fused.SOURCE.parent.glob("*.h")} == included


@pytest.mark.parametrize("damage", ["truncate", pytest.param("no checksum", marks=pytest.mark.slow)])
def test_a_damaged_cached_kernel_is_rebuilt_not_loaded(tmp_path, damage):
    """A truncated library in the cache used to kill every later process with SIGBUS (exit 135)."""
    env = {**os.environ, "LSTMKIT_HOME": str(tmp_path)}
    probe = [sys.executable, "-c", "from lstmkit.core import fused; print(fused.build()); print(fused.available())"]
    built = fused.build()  # this process's cache, built once for the session: copied, not compiled again
    library = tmp_path / "kernels" / built.name
    library.parent.mkdir()
    for path in (built, built.with_name(built.name + ".sha256")):
        shutil.copyfile(path, library.parent / path.name)
    good = library.read_bytes()
    if damage == "truncate":
        os.truncate(library, 1000)
    else:
        library.with_name(library.name + ".sha256").unlink()
    second = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, (second.returncode, second.stderr)
    assert second.stdout.split() == [str(library), "True"]
    assert library.stat().st_size == len(good)
    if damage == "truncate":
        assert "does not match its checksum; rebuilding it" in second.stderr


def test_no_compiler_warns_once_and_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTMKIT_HOME", str(tmp_path))  # an empty kernel cache: it must compile
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    monkeypatch.setattr(fused, "_state", {})
    with pytest.warns(UserWarning, match="fused LSTM kernel is unavailable"):
        assert not fused.available()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not fused.available()  # decided once per process: no second warning
    assert not list((tmp_path / "kernels").glob("*.so"))
    p = init_lstm(jax.random.key(0), 3, 8)
    hs, _ = lstm_layer(p, jnp.ones((2, 4, 3), jnp.float32))  # still runs, on the scans
    assert hs.shape == (2, 4, 8)


def test_kernel_rejects_bad_shapes_with_a_message():
    fused.available()
    W_h = jnp.zeros((1, 8, 32), jnp.float32)
    table = jnp.zeros((1, 5, 32), jnp.float32)
    mask = jnp.ones((2, 3), bool)
    h0 = jnp.zeros((1, 2, 8), jnp.float32)
    bad_ids = jnp.zeros((2, 4), jnp.int32)  # not (B, T)
    with pytest.raises(Exception, match="ids must be"):
        jax.block_until_ready(fused.recurrence(W_h, table, bad_ids, mask, h0, h0, (False,)))


@pytest.mark.parametrize("input_kind", ["dense", "table"])
def test_final_state_only(input_kind):
    """sequences=False (a layer without return_sequences): no hs, the same final states and gradients."""
    B, T, E, H, reverse = 9, 11, 4, 16, (False, True)
    V = 7 if input_kind == "table" else None
    params, x, h0, c0, mask, (_, w_h, w_c) = random_lstm_problem(11, B, T, E, H, reverse, "random", V)
    table = jnp.asarray(np.random.default_rng(2).normal(size=(V, E)), jnp.float32) if V else None

    def final_loss(params, h0, c0, table, backward, sequences):
        hs, finals = run_directions(
            params,
            x,
            mask,
            reverse=list(reverse),
            initial_state=list(zip(h0, c0)),
            backward=backward,
            embedding=table,
            sequences=sequences,
        )
        assert (hs[0] is None) == (not sequences)
        return sum(jnp.sum(f.h * w_h[d]) + jnp.sum(f.c * w_c[d]) for d, f in enumerate(finals))

    grad = lambda backward, sequences: jax.jit(
        jax.value_and_grad(final_loss, argnums=(0, 1, 2, 3)), static_argnums=(4, 5)
    )(params, h0, c0, table, backward, sequences)
    kernel_only_final = grad("bptt", False)
    assert_close(kernel_only_final, grad("autodiff", True), "final-state-only kernel vs autodiff")
    assert_close(kernel_only_final, grad("bptt", True), "final-state-only kernel vs full kernel")


def test_cxx_is_split_as_a_shell_would(monkeypatch):
    monkeypatch.setenv("CXX", f"{sys.executable} -O0")  # any program: only the split is checked
    assert fused._compiler() == [sys.executable, "-O0"]
    monkeypatch.setenv("CXX", "/nonexistent/c++ -O2")
    with pytest.raises(RuntimeError, match="is not a program here"):
        fused._compiler()


@pytest.mark.parametrize("problem", ["home is a file", "compiler hangs"])
def test_a_failed_build_names_its_cause(tmp_path, monkeypatch, problem):
    """An unwritable LSTMKIT_HOME is not 'install a C++ compiler'; a hanging compiler is cut off."""
    if problem == "home is a file":
        home = tmp_path / "home"
        home.write_text("")
        message = "cannot write the kernel cache .* set LSTMKIT_HOME to a writable folder"
    else:
        home = tmp_path
        slow = tmp_path / "slow-c++"
        slow.write_text('#!/bin/sh\n[ "$1" = --version ] && echo slow 1.0 && exit 0\nexec sleep 30\n')
        slow.chmod(0o755)
        monkeypatch.setenv("CXX", str(slow))
        monkeypatch.setattr(fused, "COMPILE_TIMEOUT", 1)
        message = "slow-c\\+\\+ did not finish in 1 s"
    monkeypatch.setenv("LSTMKIT_HOME", str(home))
    monkeypatch.setattr(fused, "_state", {})
    with pytest.warns(UserWarning, match=message):
        assert not fused.available()


# -- several threads (`kernels/pool.h`) ------------------------------------------------
# Each direction's rows are cut into blocks, one per thread (`blocks_per_direction` in
# recurrence.cc). Rows never interact, so the forward is bit for bit the same on any number of
# threads; the backward's sums over the batch (dW_h) are added per block and then across blocks,
# in another order than one loop adds them, so gradients agree to float32 rounding, and are bit for
# bit the same from run to run on the same number of threads. The reference is `jax.grad` of the
# plain scan, as above.

# (B, T, E, H, reverse, lengths, V): B = 3 with H = 8 cuts into rows [0, 2) and [2, 3) (blocks
# start on a cache line: an even row when H is not a multiple of 16); B = 1 leaves the second
# thread idle; B = 13 on 3 threads gives a unidirectional layer three blocks.
THREAD_CASES = [
    (3, 7, 4, 8, (False,), "random", None),
    (3, 7, 4, 8, (False, True), "holes", 5),
    (1, 5, 3, 16, (True,), None, 4),
    (13, 17, 12, 32, (False,), "holes", 9),
    (13, 11, 6, 24, (False, True), "random", None),
]


@pytest.fixture
def threads():
    """Sets the kernel's thread count for one test, and puts LSTMKIT_THREADS's (or the CPUs') back."""
    assert fused.available(), fused._state.get("error")
    yield fused.set_threads
    fused.set_threads(None)


def grads_on(threads, n, case):
    """((loss, outputs), gradients) of the kernel on n threads, and the problem they came from."""
    B, T, E, H, reverse, lengths, V = case
    params, x, h0, c0, mask, weights = random_lstm_problem(THREAD_CASES.index(case), B, T, E, H, reverse, lengths, V)
    table = jnp.asarray(np.random.default_rng(1).normal(size=(V, E)), jnp.float32) if V else None
    problem = (params, x, h0, c0, mask, weights, reverse, table)
    assert threads(n) == n
    return jax.device_get(value_and_grads("bptt", *problem)), problem


@pytest.mark.parametrize(
    "case", THREAD_CASES, ids=lambda c: f"B{c[0]}-H{c[3]}-D{len(c[4])}-{'table' if c[6] else 'dense'}"
)
def test_one_two_and_three_threads_agree(threads, case):
    one, problem = grads_on(threads, 1, case)
    two, _ = grads_on(threads, 2, case)
    three, _ = grads_on(threads, 3, case)
    ((_, outputs_1), grads_1), ((_, outputs_2), grads_2) = one, two
    for a, b, c in zip(jax.tree.leaves(outputs_1), jax.tree.leaves(outputs_2), jax.tree.leaves(three[0][1])):
        np.testing.assert_array_equal(a, b)  # the forward has no sum over rows: bit for bit
        np.testing.assert_array_equal(a, c)
    for a, b, c in zip(jax.tree.leaves(grads_1), jax.tree.leaves(grads_2), jax.tree.leaves(three[1])):
        scale = max(1.0, float(np.max(np.abs(a))))
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6 * scale)
        np.testing.assert_allclose(c, a, rtol=0, atol=1e-6 * scale)
    reference = value_and_grads("autodiff", *problem)
    assert_close(two, reference, "two threads against jax.grad of the scan")


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("V", [None, 9], ids=["dense", "table"])
def test_padding_a_batch_further_changes_nothing(threads, n_threads, V):
    """The same texts padded to 7 and to 40 steps: the same outputs and gradients.

    The kernel computes and sums over the real steps only (a padded row's dz is 0 and left out of
    both GEMMs), so the extra width adds no term to its sums: with a table everything is equal bit
    for bit. A dense input's dW_x is XLA's GEMM over B x T rows, whose blocking changes with T: it
    agrees to float32 rounding, and the input's gradient is zero on the padded steps.
    """
    B, T, E, H, reverse, wide = 13, 7, 6, 24, (False, True), 40
    params, x, h0, c0, mask, (w_out, w_h, w_c) = random_lstm_problem(21, B, T, E, H, reverse, "random", V)
    table = jnp.asarray(np.random.default_rng(2).normal(size=(V, E)), jnp.float32) if V else None
    steps = [(0, 0), (0, wide - T)]
    x_wide = jnp.pad(x, steps + ([] if V else [(0, 0)]))
    weights_wide = ([jnp.pad(w, steps + [(0, 0)]) for w in w_out], w_h, w_c)
    assert threads(n_threads) == n_threads
    (_, (hs, finals)), grads = jax.device_get(
        value_and_grads("bptt", params, x, h0, c0, mask, (w_out, w_h, w_c), reverse, table)
    )
    (_, (hs_wide, finals_wide)), grads_wide = jax.device_get(
        value_and_grads("bptt", params, x_wide, h0, c0, jnp.pad(mask, steps), weights_wide, reverse, table)
    )
    for d in range(len(reverse)):
        np.testing.assert_array_equal(hs_wide[d][:, :T], hs[d])
        assert not hs_wide[d][:, T:].any()
    for a, b in zip(jax.tree.leaves(finals), jax.tree.leaves(finals_wide)):
        np.testing.assert_array_equal(a, b)
    if V is None:  # (params, x, h0, c0): the input's gradient is (B, T, E)
        assert not grads_wide[1][:, T:].any()
        grads_wide = (grads_wide[0], grads_wide[1][:, :T], *grads_wide[2:])
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_wide)):
        if V is None:
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
        else:
            np.testing.assert_array_equal(b, a)


def test_same_thread_count_is_bitwise_reproducible(threads):
    case = THREAD_CASES[3]
    first, _ = grads_on(threads, 2, case)
    for _ in range(3):
        again, _ = grads_on(threads, 2, case)
        for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again)):
            np.testing.assert_array_equal(a, b)


def pool_threads_alive():
    """The process's threads named as the kernel's pool names its own (other libraries start theirs)."""
    names = []
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(FileNotFoundError):  # a thread of another library that ended meanwhile
            names.append(Path(f"/proc/self/task/{task}/comm").read_text().strip())
    return names.count("lstmkit-pool")


def test_the_pool_starts_its_threads_once(threads):
    """Calls reuse the pool's threads: none is started per call, and those started stay alive."""
    grads_on(threads, 2, THREAD_CASES[3])
    pool = fused._state["lib"].LstmkitPoolThreads
    started = pool()
    alive = pool_threads_alive()  # this pool's, and any of another build of the kernel loaded here
    assert started >= 1 and alive >= started
    for _ in range(4):
        grads_on(threads, 2, THREAD_CASES[3])
    assert pool() == started and pool_threads_alive() == alive


def test_threads_come_from_the_affinity_unless_lstmkit_threads_says(monkeypatch, threads):
    monkeypatch.delenv("LSTMKIT_THREADS", raising=False)
    assert fused.kernel_threads() == len(os.sched_getaffinity(0))
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})  # as `taskset -c N`, for this thread
    try:
        assert fused.kernel_threads() == 1
    finally:
        os.sched_setaffinity(0, allowed)
    monkeypatch.setenv("LSTMKIT_THREADS", " 3 ")
    assert fused.kernel_threads() == 3
    assert threads(None) == 3  # what the loaded kernel now uses


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_lstmkit_threads_is_one_line_naming_the_fix(monkeypatch, value):
    monkeypatch.setenv("LSTMKIT_THREADS", value)
    with pytest.raises(LstmkitError, match=r"^LSTMKIT_THREADS=.* set it to a whole number of at least 1") as e:
        fused.kernel_threads()
    assert "\n" not in str(e.value)
