"""Train N tiny models of one architecture in one process: do models 2..N reuse model 1's compiled code?

Each model is a fresh `Sequential` (TextVectorizer, Embedding, Bidirectional(LSTM), Dense), compiled
with the same settings, fitted for one short epoch on synthetic texts, then evaluated and asked to
predict. After each model the script prints the process's memory mappings (lines of
/proc/self/maps; XLA keeps each compiled CPU program in a few) and the seconds the model took. When
compiled code is shared, the mappings stay flat after the first model and models 2..N are fast.

    python benchmarks/bench_compile_sharing.py            # 20 models
    python benchmarks/bench_compile_sharing.py -n 5 --examples 256
"""

import argparse
import gc
import time

import numpy as np

from lstmkit.data.text import TextVectorizer
from lstmkit.nn.layers import LSTM, Bidirectional, Dense, Embedding
from lstmkit.nn.model import Sequential

WORDS = ["good", "great", "bad", "awful", "the", "movie", "was", "a", "plot", "and", "it", "scene"]


def synthetic(n, seed):
    """n texts of 3..20 words and their labels (1 when "good"/"great" outnumber "bad"/"awful")."""
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, rng.integers(3, 21))) for _ in range(n)]
    labels = np.array(
        [
            int(sum(w in ("good", "great") for w in t.split()) > sum(w in ("bad", "awful") for w in t.split()))
            for t in texts
        ]
    )
    return texts, labels


def memory_maps():
    """Lines of /proc/self/maps: this process's memory mappings (Linux)."""
    with open("/proc/self/maps", "rb") as f:
        return sum(1 for _ in f)


def one_model(texts, labels, seed):
    """Build, compile, fit (one epoch), evaluate and predict one fresh model."""
    vectorizer = TextVectorizer(max_tokens=16, output_sequence_length=20)
    vectorizer.adapt(texts)
    model = Sequential([vectorizer, Embedding(16, 8, mask_zero=True), Bidirectional(LSTM(8)), Dense(1, "sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", learning_rate=1e-2)
    model.fit(texts, labels, epochs=1, batch_size=32, seed=seed, verbose=False)
    model.evaluate(texts, labels)
    model.predict(texts[:40])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="models to train (default 20)")
    parser.add_argument("--examples", type=int, default=128, help="training texts per model (default 128)")
    args = parser.parse_args()
    texts, labels = synthetic(args.examples, seed=0)
    start = memory_maps()
    print(f"before the first model: {start} mappings")
    print(f"{'model':>5} {'mappings':>9} {'seconds':>8}")
    total = time.perf_counter()
    for k in range(args.n):
        t0 = time.perf_counter()
        one_model(texts, labels, seed=k)
        seconds = time.perf_counter() - t0
        gc.collect()
        print(f"{k + 1:>5} {memory_maps():>9} {seconds:>8.2f}", flush=True)
    print(f"total {time.perf_counter() - total:.1f} s; mappings {start} -> {memory_maps()}")


if __name__ == "__main__":
    main()
