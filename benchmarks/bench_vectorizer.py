"""Time lstmkit's TextVectorizer next to Keras's TextVectorization on the 25k IMDB train reviews.

Run with a Python that has TensorFlow for the side-by-side (the Keras part is skipped, with a
message, when TensorFlow is absent):

    /work/refenv/bin/python benchmarks/bench_vectorizer.py [--data ../shared/data/imdb] [--repeats 3]

Prints the median wall seconds (and CPU seconds, all threads) of adapt and encode for each,
alternating the two so that load from other processes hits both alike, checks that both give
the same vocabulary and the same ids, and reports the IMDB archive read time and how many padded time
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

from lstmkit.data.batching import padded_steps  # noqa: E402
from lstmkit.data.imdb import read_imdb  # noqa: E402
from lstmkit.data.text import TextVectorizer  # noqa: E402

CONFIGS = [
    {"max_tokens": None, "output_sequence_length": None},  # the full vocabulary, ids padded to the longest
    {"max_tokens": 20000, "output_sequence_length": 200},  # the seed's setting
]


def load_keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import keras
        import tensorflow as tf
    except ImportError:
        return None
    return keras, tf


def timed(fn):
    """((wall seconds, CPU seconds of all this process's threads), result)."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return (time.perf_counter() - start, time.process_time() - cpu), result


def bench(texts, config, repeats, keras_tf):
    """Median seconds {name: [adapt, encode]}, alternating the two libraries so load hits both alike."""
    ours = TextVectorizer(**config)
    times = {"lstmkit": ([], [])}
    results = {}
    if keras_tf is not None:
        keras, tf = keras_tf
        data = tf.constant(texts)
        layer = keras.layers.TextVectorization(**config)
        times["keras"] = ([], [])
    for _ in range(repeats):
        times["lstmkit"][0].append(timed(lambda: ours.adapt(texts))[0])
        if keras_tf is not None:
            times["keras"][0].append(timed(lambda: layer.adapt(data))[0])
        t, results["lstmkit"] = timed(lambda: ours(texts))
        times["lstmkit"][1].append(t)
        if keras_tf is not None:
            t, results["keras"] = timed(lambda: layer(data).numpy())
            times["keras"][1].append(t)
    vocabs = {"lstmkit": ours.vocabulary}
    if keras_tf is not None:
        vocabs["keras"] = [str(t) for t in layer.get_vocabulary()]
    medians = {
        name: [tuple(statistics.median(x) for x in zip(*a)), tuple(statistics.median(x) for x in zip(*e))]
        for name, (a, e) in times.items()
    }
    return medians, vocabs, results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=os.environ.get("LSTMKIT_IMDB", ROOT.parent / "shared" / "data" / "imdb"),
        help="folder with aclImdb_labeled.tar.gz, or an aclImdb folder / archive",
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    splits = read_imdb(args.data, ("train", "test"))
    print(
        f"read IMDB train+test in one pass: {time.perf_counter() - start:.2f} s ({len(splits['train'])} + {len(splits['test'])} reviews)"
    )
    texts = splits["train"].texts

    keras_tf = load_keras()
    for config in CONFIGS:
        print(f"\nconfig {config}, {len(texts)} reviews, median of {args.repeats}")
        medians, vocabs, ids = bench(texts, config, args.repeats, keras_tf)
        for name, (t_adapt, t_encode) in medians.items():
            print(
                f"  {name:8s} adapt {t_adapt[0]:5.2f} s (CPU {t_adapt[1]:5.2f} s)   encode {t_encode[0]:5.2f} s (CPU {t_encode[1]:5.2f} s)   vocab {len(vocabs[name])}"
            )
        if keras_tf is None:
            print("  keras    skipped: TensorFlow is not installed in this Python (use /work/refenv/bin/python)")
            continue
        same_ids = ids["lstmkit"].shape == ids["keras"].shape and np.array_equal(ids["lstmkit"], ids["keras"])
        print(f"  same vocabulary: {vocabs['lstmkit'] == vocabs['keras']}   same ids: {same_ids}")

    v = TextVectorizer(max_tokens=20000, output_sequence_length=200)
    v.adapt(texts)
    steps = padded_steps(v.encode_ragged(texts), 64, max_length=200, seed=0)
    saved = 1 - steps["bucketed"] / steps["plain"]
    print(
        f"\npadded steps per epoch at length 200, batch 64: plain {steps['plain']:,}, bucketed {steps['bucketed']:,} ({saved:.0%} fewer), real tokens {steps['real']:,}, {steps['batches']} batches of {steps['shapes']} shapes"
    )


if __name__ == "__main__":
    main()
