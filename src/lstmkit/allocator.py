"""glibc's allocator set for training's steps, and large blocks handed back while predicting.

A training step allocates and frees tens of MB (input projections, saved gates, their gradients),
on XLA's threads. By default glibc gives each thread an arena of its own, serves blocks that large
with fresh mmaps, and unmaps a thread arena's heap as soon as it is empty, so every step touched
fresh pages: 19,000 page faults per step of a BiLSTM(64) on 64 x 200 inputs, which then took 79 ms
against 53 ms without them (one run, /tmp script, 2026-11-30). `tune` (run at `import lstmkit`,
before JAX starts its threads) keeps freed memory for reuse in one arena instead.

Prediction is the other way round: a batch of long texts allocates a few blocks of hundreds of MB
(256 reviews x 2,500 tokens x 128 floats is 328 MB), once per batch. Carved from the one heap they
fragment it, and the heap only grows: labelling 8,000 unlabeled IMDB reviews with a default-preset
model peaked at 3.1 GB of memory, against 1.3 GB with large blocks mmapped as glibc does by default,
in the same time (docs/performance.md, "Memory"). `mapped_large_blocks` gives prediction glibc's
default back for its duration.

LSTMKIT_TUNE_MALLOC=0 leaves glibc's defaults alone throughout; elsewhere than glibc all of this
does nothing.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8  # mallopt's parameter numbers (malloc.h)
GLIBC_MMAP_MAX = 65536  # glibc's default M_MMAP_MAX

_state = {"libc": None, "predicting": 0}
_lock = threading.Lock()


def _libc():
    if os.environ.get("LSTMKIT_TUNE_MALLOC") == "0":
        return None
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return None
        import ctypes

        return ctypes.CDLL(None)
    except (ValueError, OSError, AttributeError):
        return None


def tune():
    """One arena for all threads, no mmap of its own for a big block, free heap kept up to 1 GiB."""
    libc = _state["libc"] = _libc()
    if libc is None:
        return
    libc.mallopt(M_ARENA_MAX, 1)  # one arena for all threads, so no heap of its own is unmapped
    libc.mallopt(M_MMAP_MAX, 0)  # a big block comes from the heap, not a fresh mmap
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)  # give free heap back only beyond 1 GiB


@contextmanager
def mapped_large_blocks():
    """While inside, large blocks are mmapped and unmapped when freed (glibc's default), so the
    blocks of long prediction batches do not grow the heap for good. Nests and is thread-safe:
    training's settings return when the last one leaves."""
    libc = _state["libc"]
    if libc is None:
        yield
        return
    with _lock:
        _state["predicting"] += 1
        if _state["predicting"] == 1:
            libc.mallopt(M_MMAP_MAX, GLIBC_MMAP_MAX)
    try:
        yield
    finally:
        with _lock:
            _state["predicting"] -= 1
            if _state["predicting"] == 0:
                libc.mallopt(M_MMAP_MAX, 0)
