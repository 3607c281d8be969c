"""The issue's check of `lstmkit export`: onnxruntime's probabilities against lstmkit's on IMDB test
reviews, for models trained with the seed and default presets' flags and a 3-class model.

    python benchmarks/onnx_imdb_check.py --train 2000 --test 1000

Each model trains for `--epochs` on the first `--train` IMDB train reviews (a subset: the check is
about the export, not accuracy), gets a temperature fitted on the next 500 (as `lstmkit train`
fits one on validation), is saved, exported, and both sides predict the first `--test` test
reviews (whole, up to the preset's inference length). The 3-class model reads the reviews'
ratings: 1-2, 3-4 or 7-8, 9-10. Exits 1 when a difference exceeds 1e-5.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime

from lstmkit.data.imdb import load_imdb
from lstmkit.io import checkpoint
from lstmkit.nn.model import load_model
from lstmkit.tasks.calibration import fit_temperature
from lstmkit.tasks.classifier import build_model
from lstmkit.tasks.export import export_onnx
from lstmkit.tasks.presets import resolve

IMDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb"
TOLERANCE = 1e-5
RATINGS = ["1-2", "3-8", "9-10"]


def rating_class(review_id):
    """'train/pos/123_9.txt' -> 2 (9-10); 1-2 -> 0; 3, 4, 7, 8 -> 1."""
    stars = int(review_id.rsplit("_", 1)[1].split(".")[0])
    return 0 if stars <= 2 else 2 if stars >= 9 else 1


def train_and_export(preset, classes, train, folder, epochs, n_train):
    config = resolve(preset, epochs=epochs, validation="0.1", early_stopping=0)
    labels = train.labels if classes is None else np.array([rating_class(i) for i in train.ids])
    names = train.class_names if classes is None else classes
    texts, y = train.texts[:n_train], labels[:n_train]
    model = build_model(config, len(names), steps_per_epoch=-(-n_train // config["batch_size"]), class_names=names)
    model.vectorizer.adapt(texts)
    model.fit(texts, y, epochs=epochs, batch_size=config["batch_size"], verbose=False, progress=False)
    held_out = slice(n_train, n_train + 500)
    temperature = fit_temperature(model.predict(train.texts[held_out], calibrated=False), labels[held_out])
    checkpoint.save_model(model, folder / "m", train_config={**config, "temperature": temperature})
    return export_onnx(folder / "m", folder / "onnx"), temperature


def compare(folder, export, texts):
    model = load_model(folder / "m")
    want = model.predict(texts)  # calibrated by the saved temperature, as `lstmkit predict`
    ids = model.vectorizer.encode_ragged(texts, model.inference_length)
    session = onnxruntime.InferenceSession(str(export / "model.onnx"), providers=["CPUExecutionProvider"])
    got = []
    for start in range(0, len(ids), 64):
        rows = ids[start : start + 64]
        batch = np.zeros((len(rows), max(1, *map(len, rows))), np.int64)
        for i, r in enumerate(rows):
            batch[i, : len(r)] = r
        got.append(session.run(None, {"ids": batch})[0])
    return np.abs(np.concatenate(got) - want).max(), max(map(len, ids))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--imdb", default=str(IMDB))
    args = parser.parse_args()
    train = load_imdb(args.imdb, "train", seed=0)
    test = load_imdb(args.imdb, "test", seed=0).texts[: args.test]
    worst = 0.0
    for preset, classes in (("seed", None), ("default", None), ("default", RATINGS)):
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            export, temperature = train_and_export(preset, classes, train, Path(tmp), args.epochs, args.train)
            gap, longest = compare(Path(tmp), export, test)
        worst = max(worst, gap)
        what = f"{preset} preset" + (f", {len(classes)} classes ({', '.join(classes)} stars)" if classes else "")
        print(
            f"{what}: max |onnxruntime - lstmkit| = {gap:.1e} over {len(test)} test reviews "
            f"(up to {longest} tokens), temperature {temperature:.3f}; {time.perf_counter() - t0:.0f} s"
        )
    print(f"{'ok' if worst <= TOLERANCE else 'FAILED'}: the largest difference {worst:.1e} (tolerance {TOLERANCE:.0e})")
    sys.exit(0 if worst <= TOLERANCE else 1)


if __name__ == "__main__":
    main()
