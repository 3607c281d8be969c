"""Prediction throughput: the exported ONNX graph in onnxruntime against `lstmkit predict`, on IMDB
test reviews, from text to probabilities, in one process, rounds alternating.

    python benchmarks/bench_export.py --reviews 1000 --rounds 3

For each preset's architecture (its sizes; the weights are as built, which changes no timing) the
model is saved and exported; lstmkit's side is `Sequential.predict` (vectorizer, length-sorted
batches, the fused kernel), onnxruntime's is examples/onnx_predict.py's vectorizer and batching
with `InferenceSession.run`. Both batch `--batch-size` texts. lstmkit's first call, which compiles,
is left out of the timings; so is onnxruntime's first. Prints reviews/s per round and the medians.
"""

import argparse
import importlib.util
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime

from lstmkit.data.imdb import load_imdb
from lstmkit.io import checkpoint
from lstmkit.tasks.classifier import build_model
from lstmkit.tasks.export import export_onnx
from lstmkit.tasks.presets import resolve

ROOT = Path(__file__).resolve().parents[1]
IMDB = ROOT.parent / "shared" / "data" / "imdb"


def example_module():
    """examples/onnx_predict.py as a module: its Vectorizer and predict, as a user runs them."""
    spec = importlib.util.spec_from_file_location("onnx_predict", ROOT / "examples" / "onnx_predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exported(preset, train_texts, folder):
    config = resolve(preset)
    model = build_model(config, 2, steps_per_epoch=1, class_names=["neg", "pos"])
    model.vectorizer.adapt(train_texts)
    model.build(seed=0)
    checkpoint.save_model(model, folder / preset, train_config=config)
    return model, export_onnx(folder / preset, folder / f"{preset}-onnx")


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=1000, help="IMDB test reviews per timing")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--presets", default="seed,default")
    parser.add_argument("--imdb", default=str(IMDB))
    args = parser.parse_args()
    example = example_module()
    train = load_imdb(args.imdb, "train", seed=0).texts[:5000]
    texts = load_imdb(args.imdb, "test", seed=0).texts[: args.reviews]
    print(f"onnxruntime {onnxruntime.__version__}; {len(texts)} IMDB test reviews, batch {args.batch_size}")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            model, folder = exported(preset, train, Path(tmp))
            export = json.loads((folder / "export.json").read_text())
            vectorizer = example.Vectorizer(folder, export["max_length"])
            session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])

            def run_onnx(vectorizer=vectorizer, session=session):
                return example.predict(session, [vectorizer.ids(t) for t in texts], args.batch_size)

            def run_lstmkit(model=model):
                return np.asarray(model.predict(texts, batch_size=args.batch_size))

            gap = np.abs(run_onnx() - run_lstmkit()).max()  # also the first calls, left out of the timings
            rates = {"lstmkit": [], "onnxruntime": []}
            for _ in range(args.rounds):
                rates["lstmkit"].append(len(texts) / timed(run_lstmkit))
                rates["onnxruntime"].append(len(texts) / timed(run_onnx))
            line = ", ".join(f"{name} {statistics.median(r):,.0f} reviews/s" for name, r in rates.items())
            ratio = statistics.median(rates["onnxruntime"]) / statistics.median(rates["lstmkit"])
            print(f"{preset:>8}: {line} (onnxruntime/lstmkit {ratio:.2f}x; max |difference| {gap:.1e})")
            print(
                f"{'':>8}  rounds: " + "; ".join(f"{n} " + " ".join(f"{x:,.0f}" for x in r) for n, r in rates.items())
            )


if __name__ == "__main__":
    main()
