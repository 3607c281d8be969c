"""One text through a saved model, as `lstmkit predict MODEL "text"` sends it: the batch shapes
it is padded to, the first call (compiles) and the median of later ones.

    python benchmarks/bench_predict_one.py runs/m --tokens 993 --repeats 5

The text is `--tokens` words of the model's own vocabulary, so it keeps that many ids.
"""

import argparse
import statistics
import time
from collections import Counter

from lstmkit.nn import batches
from lstmkit.nn.model import load_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--tokens", type=int, default=993, help="the text's length in words")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model = load_model(args.model_dir)
    words = [w for w in model.vectorizer.vocabulary[2:] if w.isalpha()] or ["film"]
    text = " ".join(words[i % len(words)] for i in range(args.tokens))
    ids = model._ids([text], inference=True)
    shapes = Counter(b.ids.shape for b in batches.inference_batches(model, ids, None, 256))
    t0 = time.perf_counter()
    model.predict([text])
    first = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        model.predict([text])
        times.append(time.perf_counter() - t0)
    print(
        f"{len(ids[0])} ids -> batches {', '.join(f'{n} x {shape}' for shape, n in shapes.items())}; first call {first * 1000:.0f} ms, "
        f"then median {statistics.median(times) * 1000:.1f} ms over {args.repeats}"
    )


if __name__ == "__main__":
    main()
