"""The worker side of the benchmark protocol (see the docstring of ../bench_train.py).

Every worker is a script run as `python WORKER --data X.npz --batches N --warmup W [...]`.
This module holds what all workers share: the command line, the data, the order of the batches,
peak RSS, and the one JSON line printed at the end. It imports only numpy and the standard
library, so it works in any interpreter that has the worker's framework.

Shapes: N reviews, T tokens (200 for the seed's data, up to 800 for the default preset's),
B = 64 (training batch), P = 256 (prediction batch), V vocabulary, E embedding, H hidden units.

The model's options default to the seed notebook's model; `architecture(args)` gathers them:

    Embedding(V, E, mask) [+ word pairs] [-> SpatialDropout1D] -> (Bi)LSTM(H) -> pooling
    [-> Dropout] -> Dense(dense, relu) [-> Dropout] -> Dense(1, sigmoid)
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
    _add_model_options(parser)
    args = parser.parse_args()
    if args.batches < 1 or args.warmup < 1:
        parser.error(f"--batches and --warmup must be >= 1, got {args.batches} and {args.warmup}")
    return args


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    """The architecture and training settings; the defaults are the seed notebook's model."""
    model = parser.add_argument_group("model (defaults: the seed notebook's)")
    model.add_argument("--vocab", type=int, default=100, help="V: vocabulary size, padding and [UNK] included")
    model.add_argument("--embed", type=int, default=64, help="E: embedding width")
    model.add_argument("--hidden", type=int, default=64, help="H: LSTM units per direction")
    model.add_argument("--direction", choices=("uni", "bi"), default="bi")
    model.add_argument(
        "--pooling", choices=("last", "maxmean"), default="last", help="final states, or max and mean over real steps"
    )
    model.add_argument("--dense", type=int, default=64, help="units of the hidden Dense layer")
    model.add_argument("--word-pairs", type=int, default=0, help="hash buckets of word-pair vectors (0: none)")
    model.add_argument("--dropout", type=float, default=0.0, help="dropout before and after the hidden Dense")
    model.add_argument("--embedding-dropout", type=float, default=0.0, help="spatial dropout of word vectors")
    model.add_argument("--learning-rate", type=float, default=1e-3)
    model.add_argument("--clipnorm", type=float, default=0.0, help="global gradient norm clip (0: off)")
    model.add_argument("--weight-average", type=float, default=0.0, help="decay of a weight EMA (0: off)")
    model.add_argument(
        "--sequence-length", type=int, default=0, help="the model's longest input (lstmkit's buckets); 0: x's width"
    )
    model.add_argument(
        "--bucket", action="store_true", help="lstmkit: time length-bucketed batches as `lstmkit train` does"
    )
    model.add_argument(
        "--table-updates",
        choices=("dense", "rows"),
        default="dense",
        help="lstmkit: Adam on every embedding row (dense) or on the rows a batch read (rows)",
    )
    model.add_argument("--threads", type=int, default=0, help="compute threads (0: the library's default)")
    parser.add_argument("--quick", action="store_true", help="skip secondary timings (Keras's train_on_batch)")


def architecture(args: argparse.Namespace) -> dict:
    """The model a worker builds, for its JSON line."""
    keys = ("vocab", "embed", "hidden", "direction", "pooling", "dense", "word_pairs", "dropout")
    keys += ("embedding_dropout", "learning_rate", "clipnorm", "weight_average", "sequence_length", "bucket")
    return {key: getattr(args, key) for key in keys}


def thread_count(args: argparse.Namespace) -> int:
    """--threads, else the CPUs this process may use (taskset limits them): what a library
    left to its default uses."""
    return args.threads or core_count()


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
    ms_per_batch=None,
) -> None:
    """Print the one JSON result line (the last line of stdout).

    ms_per_batch: the cost of an average batch of an epoch when the timed batches differ in shape
    (lstmkit's buckets); None: the median of step_ms (every batch has the same shape)."""
    result = {
        "protocol": PROTOCOL_VERSION,
        "framework": framework,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, **versions},
        "threads": threads,
        "batch_size": args.batch_size,
        "warmup_ms": [round(t, 3) for t in warmup_ms],
        "step_ms": [round(t, 3) for t in step_ms],
        "ms_per_batch": statistics.median(step_ms) if ms_per_batch is None else ms_per_batch,
        "epoch_batches": epoch_batches(n_reviews, args.batch_size),
        "epoch_s": epoch_s,
        "predict_batch_size": args.predict_batch_size if args.predict else None,
        "predict_reviews_per_s": predict_reviews_per_s,
        "peak_rss_mib": peak_rss_mib(),
        "final_loss": final_loss,
        "notes": notes,
        "architecture": architecture(args),
        "extra": extra or {},
    }
    print(json.dumps(result), flush=True)
