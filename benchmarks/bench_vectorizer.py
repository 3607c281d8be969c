"""Time lstmkit's TextVectorizer next to Keras's TextVectorization on the 25k IMDB train reviews.

Run with a Python that has TensorFlow for the side-by-side (the Keras part is skipped, with a
message, when TensorFlow is absent):

    /work/refenv/bin/python benchmarks/bench_vectorizer.py [--data ../shared/data/imdb] [--repeats 3]

Prints the median seconds of adapt and encode for each, checks that both give the same
vocabulary and the same ids, and reports the IMDB archive read time and how many padded time
steps length bucketing saves at output length 200, batch 64.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # runs from a checkout in any venv that has numpy

import numpy as np  # noqa: E402

from lstmkit.batching import padded_steps  # noqa: E402
from lstmkit.datasets import read_imdb  # noqa: E402
from lstmkit.text import TextVectorizer  # noqa: E402

CONFIGS = [
    {"max_tokens": None, "output_sequence_length": None},  # the full vocabulary, ids padded to the longest
    {"max_tokens": 20000, "output_sequence_length": 200},  # the seed's setting
]


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def bench_lstmkit(texts, config, repeats):
    v = TextVectorizer(**config)
    t_adapt, _ = median_time(lambda: v.adapt(texts), repeats)
    t_encode, ids = median_time(lambda: v(texts), repeats)
    return t_adapt, t_encode, v.vocabulary, ids


def bench_keras(texts, config, repeats):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import keras
        import tensorflow as tf
    except ImportError:
        return None
    data = tf.constant(texts)
    layer = keras.layers.TextVectorization(**config)
    t_adapt, _ = median_time(lambda: layer.adapt(data), repeats)
    t_encode, ids = median_time(lambda: layer(data).numpy(), repeats)
    return t_adapt, t_encode, [str(t) for t in layer.get_vocabulary()], ids


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("LSTMKIT_IMDB", ROOT.parent / "shared" / "data" / "imdb"), help="folder with aclImdb_labeled.tar.gz, or an aclImdb folder / archive")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    splits = read_imdb(args.data, ("train", "test"))
    print(f"read IMDB train+test in one pass: {time.perf_counter() - start:.2f} s ({len(splits['train'])} + {len(splits['test'])} reviews)")
    texts = splits["train"].texts

    for config in CONFIGS:
        print(f"\nconfig {config}, {len(texts)} reviews, median of {args.repeats}")
        ours = bench_lstmkit(texts, config, args.repeats)
        print(f"  lstmkit  adapt {ours[0]:6.2f} s   encode {ours[1]:6.2f} s   vocab {len(ours[2])}")
        theirs = bench_keras(texts, config, args.repeats)
        if theirs is None:
            print("  keras    skipped: TensorFlow is not installed in this Python (use /work/refenv/bin/python)")
            continue
        print(f"  keras    adapt {theirs[0]:6.2f} s   encode {theirs[1]:6.2f} s   vocab {len(theirs[2])}")
        same_vocab = ours[2] == theirs[2]
        same_ids = ours[3].shape == theirs[3].shape and np.array_equal(ours[3], theirs[3])
        print(f"  same vocabulary: {same_vocab}   same ids: {same_ids}")

    v = TextVectorizer(max_tokens=20000, output_sequence_length=200)
    v.adapt(texts)
    steps = padded_steps(v.encode_ragged(texts), 64, max_length=200, seed=0)
    saved = 1 - steps["bucketed"] / steps["plain"]
    print(f"\npadded steps per epoch at length 200, batch 64: plain {steps['plain']:,}, bucketed {steps['bucketed']:,} ({saved:.0%} fewer), real tokens {steps['real']:,}, {steps['batches']} batches of {steps['shapes']} shapes")


if __name__ == "__main__":
    main()
