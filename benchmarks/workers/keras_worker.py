"""Keras 3 peer: the seed's model, on the backend named by KERAS_BACKEND (tensorflow or jax).

Input(200 int ids) -> Embedding(100, 64, mask_zero=True) -> Bidirectional(LSTM(64))
-> Dense(64, relu) -> Dense(1, sigmoid); Adam (Keras defaults), binary cross-entropy, accuracy
metric, as in the seed notebook's compile(). Protocol: see ../bench_train.py.

What is timed is what `model.fit` costs per step: a callback takes the time between the ends of
consecutive batches (for the first, from its begin). A callback that reads the batch logs makes
Keras convert the loss to a Python float each step, so every step has finished on the device
before its time is taken. The first steps (the compile) are warmup and stay out of the median.
`train_on_batch` is timed as well, for comparison, and reported under extra.
"""

import os
import time

import numpy as np
import protocol

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
BACKEND_NAMES = {"tensorflow": "keras-tf", "jax": "keras-jax"}

try:
    import keras
except Exception as error:  # a missing backend surfaces as all sorts of errors at import
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    protocol.unavailable(f"keras with backend {backend} is not importable ({error})")


class StepTimer(keras.callbacks.Callback):
    """Wall time of every training step inside fit(), in ms."""

    def __init__(self):
        super().__init__()
        self.step_ms, self.last_loss, self._last = [], float("nan"), None

    def on_train_batch_begin(self, batch, logs=None):
        if self._last is None:
            self._last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.step_ms.append((now - self._last) * 1e3)
        self._last = now
        self.last_loss = float(logs["loss"])


def build_model(seq_len: int) -> "keras.Model":
    model = keras.Sequential(
        [
            keras.Input(shape=(seq_len,), dtype="int32"),
            keras.layers.Embedding(100, 64, mask_zero=True),
            keras.layers.Bidirectional(keras.layers.LSTM(64)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def backend_versions(backend: str) -> dict:
    if backend == "tensorflow":
        import tensorflow as tf

        return {"keras": keras.__version__, "tensorflow": tf.__version__}
    import jax
    import jaxlib

    return {"keras": keras.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__}


def main() -> None:
    args = protocol.parse_args(__doc__.splitlines()[0])
    backend = keras.backend.backend()
    if backend not in BACKEND_NAMES:
        protocol.unavailable(f"keras backend {backend!r} is not benchmarked; use tensorflow or jax")
    keras.utils.set_random_seed(args.seed)

    x, y = protocol.load_data(args.data)
    y = y.astype(np.float32)
    b = args.batch_size
    model = build_model(x.shape[1])

    # fit() over exactly the protocol's batches, in order: warmup first, then the timed ones.
    starts = protocol.training_batch_starts(len(x), b, args.warmup + args.batches)
    rows = np.concatenate([np.arange(start, start + b) for start in starts])
    timer = StepTimer()
    model.fit(x[rows], y[rows], batch_size=b, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
    fit_ms = timer.step_ms

    # train_on_batch on the same batches again, for comparison with fit's per-step cost. It
    # compiles a step function of its own, so it gets its own warmup.
    on_batch_ms = []
    for start in starts:
        t0 = time.perf_counter()
        model.train_on_batch(x[start : start + b], y[start : start + b])
        on_batch_ms.append((time.perf_counter() - t0) * 1e3)

    epoch_s = None
    if args.full_epoch:  # as the seed runs it; the last, partial batch may compile once more
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=b, epochs=1, shuffle=False, verbose=0)
        epoch_s = time.perf_counter() - t0

    reviews_per_s = None
    if args.predict:
        p = args.predict_batch_size
        n_predict = min(args.predict_batches * p, (len(x) // p) * p)
        model.predict(x[:p], batch_size=p, verbose=0)  # warmup: compiles the predict step
        t0 = time.perf_counter()
        model.predict(x[:n_predict], batch_size=p, verbose=0)
        reviews_per_s = n_predict / (time.perf_counter() - t0)

    protocol.emit(
        BACKEND_NAMES[backend],
        args,
        versions=backend_versions(backend),
        warmup_ms=fit_ms[: args.warmup],
        step_ms=fit_ms[args.warmup :],
        n_reviews=len(x),
        epoch_s=epoch_s,
        predict_reviews_per_s=reviews_per_s,
        final_loss=timer.last_loss,
        notes="model.fit per-step time (callback), metrics=['accuracy'] as in the seed",
        extra={
            "train_on_batch_ms": [round(t, 3) for t in on_batch_ms[args.warmup :]],
            "train_on_batch_ms_median": float(np.median(on_batch_ms[args.warmup :])),
            "jit_compile": str(getattr(model, "jit_compile", "?")),
        },
    )


if __name__ == "__main__":
    main()
