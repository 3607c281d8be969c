"""Peak memory of labelling unlabeled reviews with a saved model: what `best`'s self-training does.

    /usr/bin/time -f "peak %M KB" python benchmarks/predict_memory.py runs/default-s0 --texts 8000

Prints the predict time; run it under `/usr/bin/time -f %M` for the peak RSS, and with
LSTMKIT_TUNE_MALLOC=0 for glibc's allocator defaults throughout (docs/performance.md, "Memory").
"""

import argparse
import time

import numpy as np

from lstmkit.data.unlabeled import read_unlabeled
from lstmkit.nn.model import load_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a saved model directory")
    parser.add_argument("--texts", type=int, default=8000, help="how many unlabeled reviews to label")
    parser.add_argument("--unlabeled", default="../shared/data/imdb/aclImdb_unsup.tar.gz")
    args = parser.parse_args()
    texts = read_unlabeled(args.unlabeled, seed=0)[: args.texts]
    model = load_model(args.model)
    start = time.perf_counter()
    proba = np.asarray(model.predict(texts, calibrated=False))
    print(f"{len(texts)} texts in {time.perf_counter() - start:.1f} s, mean probability {proba.mean():.4f}")


if __name__ == "__main__":
    main()
