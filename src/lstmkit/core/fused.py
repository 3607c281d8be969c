"""The fused recurrence: `lstmkit.core.bptt`'s two loops as two C++ custom calls, built on first use.

Shape legend: D directions, B batch, T time, E input features, V table rows, H hidden units, G = 4H.

`bptt.py` is the readable version and the reference: its loops are `lax.scan`s, and XLA runs every
step as a dozen small kernels, one at a time. `kernels/recurrence.cc` runs the same equations
(its header has them) with all T steps inside one call, and the backward accumulating dW_h and
the table's gradient as it goes. Each direction's batch rows are cut into blocks that run on a pool
of threads started once per process (`kernels/pool.h`): as many threads as LSTMKIT_THREADS says,
else as many as the CPUs this process may run on (its affinity: `taskset -c 0` means one). The two are checked
against each other (tests/test_fused.py) and against `jax.grad` of the plain forward.

It is used for float32 on the CPU when H is a multiple of 8; anything else, or LSTMKIT_KERNEL=0,
runs `bptt.py`'s scans. The kernel is compiled with the machine's C++ compiler ($CXX, else c++)
for this very CPU (-march=native) the first time an LSTM runs, and kept in
$LSTMKIT_HOME/kernels (default ~/.cache/lstmkit/kernels) under a name that hashes the source,
the flags, the compiler, the CPU and jaxlib's version. Without a compiler lstmkit warns once and
uses the scans.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from lstmkit.atomic import sha256, write_bytes
from lstmkit.core.bptt import embedding_projection
from lstmkit.errors import LstmkitError
from lstmkit.paths import lstmkit_home

SOURCE = Path(__file__).with_name("kernels") / "recurrence.cc"
HEADERS = tuple(
    SOURCE.with_name(name) for name in ("backward.h", "pool.h", "rows.h", "simd.h")
)  # SOURCE includes them: hashed too
FLAGS = ("-O3", "-march=native", "-std=c++17", "-ffp-contract=fast", "-fPIC", "-shared", "-pthread")
_TARGETS = {
    "lstmkit_recurrence_forward": "LstmkitRecurrenceForward",
    "lstmkit_recurrence_backward": "LstmkitRecurrenceBackward",
}
_lock = threading.Lock()
_state = {}  # "ok": bool once tried; "error": why it is unavailable


COMPILE_TIMEOUT = 600  # seconds; the build takes a few, and says so on stderr before it starts


def kernel_dir() -> Path:
    return lstmkit_home() / "kernels"


def _cpu_id() -> str:
    """What -march=native depends on: the CPU model and its feature flags."""
    try:
        with open("/proc/cpuinfo") as f:
            return "".join(line for line in f if line.startswith(("model name", "flags")))[:4096]
    except OSError:
        return platform.processor() + platform.machine()


def cpu_summary() -> dict:
    """{"model": the CPU's name, "features": the SIMD features the kernel's code paths use}."""
    text = _cpu_id()
    model = next(
        (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return {
        "model": model,
        "features": [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl") if f in flags],
    }


def _compiler() -> list[str]:
    """The compiler command: $CXX split as a shell would ("g++ -O0" is g++ and a flag), else c++, g++ or clang++."""
    if os.environ.get("CXX"):
        cxx = shlex.split(os.environ["CXX"])
        if not shutil.which(cxx[0]):
            raise RuntimeError(f"CXX={os.environ['CXX']!r}: {cxx[0]} is not a program here (set CXX to a C++ compiler)")
        return cxx
    found = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if not found:
        raise RuntimeError("no C++ compiler found (install g++ or clang++, or set CXX)")
    return [found]


def _writable_cache() -> Path:
    folder = kernel_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as e:
        raise RuntimeError(
            f"cannot write the kernel cache {folder} ({e.strerror}); set LSTMKIT_HOME to a writable folder"
        ) from None
    return folder


def build() -> Path:
    """Compile kernels/recurrence.cc into the kernel cache unless it is there; returns the library.

    The library is compiled to a temporary file, fsynced, its size and SHA-256 written beside it
    (`NAME.so.sha256`, also fsynced), and renamed into place, so a concurrent or interrupted
    build never leaves a half-written library under the final name. A cached library is loaded
    only if it matches what was written beside it; a damaged one (truncated, say: loading it
    would crash the process with SIGBUS) is rebuilt.
    """
    cxx = _compiler()
    version = subprocess.run([*cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
    key = hashlib.sha256()
    for part in (
        SOURCE.read_bytes(),
        *(header.read_bytes() for header in HEADERS),
        " ".join(FLAGS).encode(),
        version.encode(),
        _cpu_id().encode(),
        jax.lib.__version__.encode(),
    ):
        key.update(part)
    target = kernel_dir() / f"recurrence-{key.hexdigest()[:16]}.so"
    if _verified(target):
        return target
    if target.exists():
        warnings.warn(f"lstmkit: the cached kernel {target} does not match its checksum; rebuilding it", stacklevel=2)
    _writable_cache()
    print(
        f"lstmkit: building the LSTM kernel for this CPU, once (a few seconds; kept in {target.parent})",
        file=sys.stderr,
        flush=True,
    )
    fd, tmp = tempfile.mkstemp(prefix=".recurrence-", suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        cmd = [*cxx, *FLAGS, "-isystem", jax.ffi.include_dir(), str(SOURCE), "-o", tmp]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{Path(cxx[0]).name} did not finish in {COMPILE_TIMEOUT} s") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"{Path(cxx[0]).name} failed: {last}")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        write_bytes(_checksum_file(target), f"{os.path.getsize(tmp)} {sha256(tmp)}\n".encode())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _checksum_file(library: Path) -> Path:
    return library.with_name(library.name + ".sha256")


def _verified(library: Path) -> bool:
    """Whether the cached library has the size and SHA-256 recorded beside it when it was built."""
    try:
        size, digest = _checksum_file(library).read_text().split()
        return library.stat().st_size == int(size) and sha256(library) == digest
    except (OSError, ValueError):
        return False


def available() -> bool:
    """True when the kernel is built, loaded and registered with XLA; builds it the first time.

    False when LSTMKIT_KERNEL=0, or (with one warning) when it cannot be built or loaded.
    """
    if os.environ.get("LSTMKIT_KERNEL") == "0":
        return False
    with _lock:
        if "ok" not in _state:
            threads = kernel_threads()  # a bad LSTMKIT_THREADS is the user's to fix: raised, not a fallback
            try:
                library = build()
                lib = ctypes.cdll.LoadLibrary(str(library))
                for name, symbol in _TARGETS.items():
                    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
                lib.LstmkitSetThreads(ctypes.c_int(threads))
                _state["ok"], _state["library"], _state["lib"] = True, str(library), lib
            except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as e:
                _state["ok"], _state["error"] = False, str(e)
                warnings.warn(
                    f"lstmkit: the fused LSTM kernel is unavailable ({e}); using the slower JAX scan "
                    "(LSTMKIT_KERNEL=0 chooses it and silences this)",
                    stacklevel=2,
                )
        return _state["ok"]


def kernel_threads() -> int:
    """How many threads the kernel runs on: LSTMKIT_THREADS if set, else the CPUs this process may use.

    The CPUs are the process's affinity (`os.sched_getaffinity`), so `taskset -c 0,1` gives 2
    whatever the machine has. LSTMKIT_THREADS must be a whole number of at least 1.
    """
    value = os.environ.get("LSTMKIT_THREADS", "").strip()
    if not value:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise LstmkitError(
            f"LSTMKIT_THREADS={value!r} is not a number of threads: set it to a whole number of at least 1 "
            "(or unset it to use every CPU this process may run on)"
        )
    return threads


def set_threads(threads: int | None = None) -> int:
    """Sets how many threads the loaded kernel uses from its next call on; returns the number.

    None reads LSTMKIT_THREADS (else the process's CPUs) again. Results depend on the number
    (sums over the batch are added in another order), never on the run: tests compare 1 and 2.

        >>> set_threads(1)  # doctest: +SKIP
        1
    """
    threads = kernel_threads() if threads is None else int(threads)
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    if available():
        _state["lib"].LstmkitSetThreads(ctypes.c_int(threads))
        return int(_state["lib"].LstmkitThreads())
    return threads


def status() -> tuple[bool, str]:
    """(whether LSTM layers run on the kernel here, the reason in words); builds it if needed.

    Call it before tracing (`fit`, `predict`, `explain` and `pretrain` do), so that the build,
    its line on stderr and any toolchain failure come before the first compile, not inside it.
    """
    if os.environ.get("LSTMKIT_KERNEL") == "0":
        return False, "LSTMKIT_KERNEL=0 chooses the JAX scans"
    if jax.default_backend() != "cpu":
        return False, f"the kernel is for the CPU, and JAX runs on {jax.default_backend()}: the JAX scans run there"
    if available():
        return (
            True,
            f"the fused C++ kernel for float32 layers whose H is a multiple of 8 ({_state['library']}), "
            f"on {_state['lib'].LstmkitThreads()} threads (LSTMKIT_THREADS, else the CPUs this process may use); "
            "other layers run the JAX scans",
        )
    return False, f"the kernel is unavailable ({_state.get('error')}): the JAX scans run"


def usable(dtype, H) -> bool:
    """Whether an LSTM of H units in `dtype` runs on the kernel here (else on bptt.py's scans)."""
    return jnp.dtype(dtype) == jnp.float32 and H % 8 == 0 and jax.default_backend() == "cpu" and available()


def _reverse_bits(reverse) -> np.int64:
    return np.int64(sum(1 << d for d, r in enumerate(reverse) if r))


@partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def recurrence(W_h, x_proj, ids, mask, h0, c0, reverse, sequences=True):
    """All T steps of D directions; the kernel's forward, with its backward as the VJP.

    Args:
        W_h (D, H, G); mask (B, T) bool; h0, c0 (D, B, H); reverse: D static bools.
        x_proj: the input projections x W_x + b, (D, B, T, G); or a table (D, V, G) of projected
            rows to gather with ids (B, T) int32 (pass ids of shape (0,) for a dense x_proj).
        sequences: False when only the final states are wanted: hs is then (0,), neither
            written nor differentiated.

    Returns:
        hs (D, B, T, H), aligned with the input and zero on masked steps; h_T, c_T (D, B, H).
    """
    return _forward(W_h, x_proj, ids, mask, h0, c0, reverse, sequences, save=False)[
        :3
    ]  # not differentiated: no residuals


def _forward(W_h, x_proj, ids, mask, h0, c0, reverse, sequences, save):
    D, H, G = W_h.shape
    B, T = mask.shape
    residuals = [(D, T, B, G), (D, T, B, H), (D, T, B, H)] if save else [(0,)] * 3
    shapes = [(D, B, T, H) if sequences else (0,), (D, B, H), (D, B, H), *residuals]
    call = jax.ffi.ffi_call("lstmkit_recurrence_forward", [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes])
    return call(W_h, x_proj, ids, mask, h0, c0, reverse=_reverse_bits(reverse), save=save, sequences=sequences)


def _recurrence_fwd(W_h, x_proj, ids, mask, h0, c0, reverse, sequences):
    hs, h_T, c_T, gates, h_seq, c_seq = _forward(W_h, x_proj, ids, mask, h0, c0, reverse, sequences, save=True)
    return (hs, h_T, c_T), (W_h, ids, mask, h0, c0, gates, h_seq, c_seq, x_proj.shape)


def _recurrence_bwd(reverse, sequences, saved, cotangents):
    W_h, ids, mask, h0, c0, gates, h_seq, c_seq, x_shape = saved
    d_hs, dh_T, dc_T = cotangents
    shapes = [W_h.shape, x_shape, h0.shape, c0.shape]
    call = jax.ffi.ffi_call("lstmkit_recurrence_backward", [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes])
    dW_h, dx_proj, dh0, dc0 = call(
        W_h,
        ids,
        mask,
        h0,
        c0,
        gates,
        h_seq,
        c_seq,
        d_hs,
        dh_T,
        dc_T,
        reverse=_reverse_bits(reverse),
        sequences=sequences,
    )
    return dW_h, dx_proj, None, None, dh0, dc0


recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def fused_directions(W_x, W_h, b, x, mask, h0, c0, reverse, table=None, sequences=True, trace=False):
    """`bptt.lstm_scan` on the kernel: the input projection in XLA, the loops in C++.

    Batch-first throughout: the kernel reads step s of a reverse direction at t = T-1-s itself,
    so nothing is flipped or transposed. With `table` (V, E), x is (B, T) ids and the kernel
    gathers rows of the projected table P = table W_x + b (`bptt.embedding_projection`).
    With sequences=False, hs comes back as None and costs nothing. With trace, the forward
    also returns what it saves for the backward, as `bptt.lstm_scan` does: the gates [i f g o]
    (T, D, B, 4H, undefined on masked steps: the kernel computes none there) and the carried
    h, c (T, D, B, H), in scan order; not differentiable.
    """
    D, E, G = W_x.shape
    B, T = mask.shape
    if table is not None:
        x_proj = embedding_projection(table, W_x, b)  # (D, V, G)
        ids = x.astype(jnp.int32)
    else:
        x_2d = x.reshape(B * T, E)
        x_proj = jnp.stack([(x_2d @ W_x[d] + b[d]).reshape(B, T, G) for d in range(D)])  # (D, B, T, G)
        ids = jnp.zeros((0,), jnp.int32)
    reverse = tuple(bool(r) for r in reverse)
    if trace:  # the kernel's training forward, which saves its residuals
        hs, h_T, c_T, *residuals = _forward(W_h, x_proj, ids, mask, h0, c0, reverse, bool(sequences), save=True)
        residuals = tuple(jnp.swapaxes(a, 0, 1) for a in residuals)  # (D, T, B, .) -> (T, D, B, .)
        return (hs if sequences else None), h_T, c_T, residuals
    hs, h_T, c_T = recurrence(W_h, x_proj, ids, mask, h0, c0, reverse, bool(sequences))
    return (hs if sequences else None), h_T, c_T
