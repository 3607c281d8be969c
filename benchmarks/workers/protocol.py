"""The worker side of the benchmark protocol (see the docstring of ../bench_train.py).

Every worker is a script run as `python WORKER --data X.npz --batches N --warmup W [...]`.
This module holds what all workers share: the command line, the data, the order of the batches,
peak RSS, and the one JSON line printed at the end. It imports only numpy and the standard
library, so it works in any interpreter that has the worker's framework.

Shapes: N reviews, T = 200 tokens, B = 64 (training batch), P = 256 (prediction batch).
"""

import argparse
import json
import os
import platform
import resource
import statistics
import sys

import numpy as np

PROTOCOL_VERSION = 1
EXIT_UNAVAILABLE = 3  # the framework cannot be imported: the harness skips it with the message


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", required=True, help="npz with x (N, T) int32 ids, y (N,) int32")
    parser.add_argument("--batches", type=int, default=20, help="timed training batches")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches first (compile)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--predict", action="store_true", help="also measure prediction")
    parser.add_argument("--predict-batches", type=int, default=8)
    parser.add_argument("--predict-batch-size", type=int, default=256)
    parser.add_argument("--full-epoch", action="store_true", help="also time one real epoch")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.batches < 1 or args.warmup < 1:
        parser.error(f"--batches and --warmup must be >= 1, got {args.batches} and {args.warmup}")
    return args


def unavailable(message: str) -> None:
    """Say in one line why this framework can't run here, and exit so the harness skips it."""
    print(message, file=sys.stderr)
    sys.exit(EXIT_UNAVAILABLE)


def load_data(path: str) -> tuple[np.ndarray, np.ndarray]:
    """x (N, T) int32 token ids, 0 = padding at the end; y (N,) int32 labels in {0, 1}."""
    with np.load(path) as data:
        x, y = data["x"], data["y"]
    if x.dtype != np.int32 or x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"expected x (N, T) int32 and y (N,), got x {x.shape} {x.dtype}, y {y.shape}")
    return x, y


def training_batch_starts(n_reviews: int, batch_size: int, count: int) -> list[int]:
    """Row offsets of the first `count` full batches, in data order, wrapping around.

    Every worker trains on the same batches in the same order: warmup batches, then timed ones.
    """
    n_full = n_reviews // batch_size
    return [(k % n_full) * batch_size for k in range(count)]


def epoch_batches(n_reviews: int, batch_size: int) -> int:
    """Batches in one epoch, the last one partial: 25000 reviews at 64 -> 391."""
    return -(-n_reviews // batch_size)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def core_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def emit(
    framework: str,
    args: argparse.Namespace,
    *,
    versions: dict,
    warmup_ms: list,
    step_ms: list,
    n_reviews: int,
    epoch_s=None,
    predict_reviews_per_s=None,
    final_loss=None,
    threads=None,
    notes: str = "",
    extra: dict | None = None,
) -> None:
    """Print the one JSON result line (the last line of stdout)."""
    result = {
        "protocol": PROTOCOL_VERSION,
        "framework": framework,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, **versions},
        "threads": threads,
        "batch_size": args.batch_size,
        "warmup_ms": [round(t, 3) for t in warmup_ms],
        "step_ms": [round(t, 3) for t in step_ms],
        "ms_per_batch": statistics.median(step_ms),
        "epoch_batches": epoch_batches(n_reviews, args.batch_size),
        "epoch_s": epoch_s,
        "predict_batch_size": args.predict_batch_size if args.predict else None,
        "predict_reviews_per_s": predict_reviews_per_s,
        "peak_rss_mib": peak_rss_mib(),
        "final_loss": final_loss,
        "notes": notes,
        "extra": extra or {},
    }
    print(json.dumps(result), flush=True)
