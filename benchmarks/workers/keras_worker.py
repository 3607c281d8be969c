"""Keras 3 peer: the protocol's model, on the backend named by KERAS_BACKEND (tensorflow or jax).

With the default options the seed's: Input(T int ids) -> Embedding(100, 64, mask_zero=True)
-> Bidirectional(LSTM(64)) -> Dense(64, relu) -> Dense(1, sigmoid); Adam (Keras defaults),
binary cross-entropy, accuracy metric, as in the seed notebook's compile(). The options change
V, E, H, the direction, and add what the default preset has: word-pair vectors (`WordPairs`, a
second table added to the word vectors), SpatialDropout1D, max and mean pooling over the
unmasked steps (`MaskedMaxMean`, the LSTM with return_sequences), Dropout around the hidden
Dense, Adam's global_clipnorm and its moving average of the weights (use_ema). The mask from
mask_zero reaches the LSTM and the pooling. Protocol: see ../bench_train.py.

Threads: TensorFlow's intra- and inter-op pools are set to --threads (else the CPUs this process
may use); on JAX, one thread means XLA_FLAGS without Eigen's thread pool (the harness sets it).

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

ARGS = protocol.parse_args(__doc__.splitlines()[0])

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


class WordPairs(keras.layers.Layer):
    """Word vectors plus hashed word-pair vectors: x_t = E[w_t] + P[(w_{t-1} * 10007 + w_t) mod N].

    (B, T) int ids -> (B, T, E), masked where the id is 0 (padding). The hash differs from
    lstmkit's (int32 arithmetic that cannot overflow for V < 200,000); the work is the same.
    """

    def __init__(self, vocab: int, dim: int, buckets: int, **kwargs):
        super().__init__(**kwargs)
        self.words = keras.layers.Embedding(vocab, dim)
        self.pairs = keras.layers.Embedding(buckets, dim)
        self.buckets = buckets

    def call(self, ids):
        previous = keras.ops.pad(ids[:, :-1], ((0, 0), (1, 0)))
        pair_ids = (previous * 10007 + ids) % self.buckets
        return self.words(ids) + self.pairs(pair_ids)

    def compute_mask(self, ids, mask=None):
        return keras.ops.not_equal(ids, 0)


class MaskedMaxMean(keras.layers.Layer):
    """Max and mean over the unmasked steps, concatenated: (B, T, F) -> (B, 2F)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x, mask=None):
        if mask is None:
            return keras.ops.concatenate([keras.ops.max(x, axis=1), keras.ops.mean(x, axis=1)], axis=-1)
        m = keras.ops.cast(keras.ops.expand_dims(mask, -1), x.dtype)
        largest = keras.ops.max(keras.ops.where(m > 0, x, -1e9), axis=1)
        mean = keras.ops.sum(x * m, axis=1) / keras.ops.maximum(keras.ops.sum(m, axis=1), 1.0)
        return keras.ops.concatenate([largest, mean], axis=-1)

    def compute_mask(self, x, mask=None):
        return None


def build_model(args, seq_len: int) -> "keras.Model":
    """The protocol's model (see the module docstring), compiled."""
    ids = keras.Input(shape=(seq_len,), dtype="int32")
    if args.word_pairs:
        x = WordPairs(args.vocab, args.embed, args.word_pairs)(ids)
    else:
        x = keras.layers.Embedding(args.vocab, args.embed, mask_zero=True)(ids)
    if args.embedding_dropout:
        x = keras.layers.SpatialDropout1D(args.embedding_dropout)(x)
    pooled = args.pooling == "maxmean"
    lstm = keras.layers.LSTM(args.hidden, return_sequences=pooled)
    x = (keras.layers.Bidirectional(lstm) if args.direction == "bi" else lstm)(x)
    if pooled:
        x = MaskedMaxMean()(x)
    if args.dropout:
        x = keras.layers.Dropout(args.dropout)(x)
    x = keras.layers.Dense(args.dense, activation="relu")(x)
    if args.dropout:
        x = keras.layers.Dropout(args.dropout)(x)
    model = keras.Model(ids, keras.layers.Dense(1, activation="sigmoid")(x))
    optimizer = keras.optimizers.Adam(
        learning_rate=args.learning_rate,
        global_clipnorm=args.clipnorm or None,
        use_ema=bool(args.weight_average),
        ema_momentum=args.weight_average or 0.99,
    )
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"])
    return model


def set_threads(backend: str, threads: int) -> None:
    """TensorFlow's pools to `threads`; on JAX, XLA reads XLA_FLAGS (set by the harness)."""
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def train_on_batch_numbers(step_ms: list) -> dict:
    if not step_ms:  # --quick
        return {}
    return {"train_on_batch_ms": [round(t, 3) for t in step_ms], "train_on_batch_ms_median": float(np.median(step_ms))}


def backend_versions(backend: str) -> dict:
    if backend == "tensorflow":
        import tensorflow as tf

        return {"keras": keras.__version__, "tensorflow": tf.__version__}
    import jax
    import jaxlib

    return {"keras": keras.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__}


def main() -> None:
    args = ARGS
    backend = keras.backend.backend()
    if backend not in BACKEND_NAMES:
        protocol.unavailable(f"keras backend {backend!r} is not benchmarked; use tensorflow or jax")
    threads = args.threads or None  # None: TensorFlow's own choice (the CPUs it may use)
    if threads:
        set_threads(backend, threads)
    keras.utils.set_random_seed(args.seed)

    x, y = protocol.load_data(args.data)
    y = y.astype(np.float32)
    b = args.batch_size
    model = build_model(args, x.shape[1])

    # fit() over exactly the protocol's batches, in order: warmup first, then the timed ones.
    starts = protocol.training_batch_starts(len(x), b, args.warmup + args.batches)
    rows = np.concatenate([np.arange(start, start + b) for start in starts])
    timer = StepTimer()
    model.fit(x[rows], y[rows], batch_size=b, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
    fit_ms = timer.step_ms

    # train_on_batch on the same batches again, for comparison with fit's per-step cost. It
    # compiles a step function of its own, so it gets its own warmup. Not with a weight average:
    # on JAX, Keras 3.15.1's train_on_batch after fit with use_ema fails ("Attempt to donate the
    # same buffer twice").
    on_batch_ms = []
    for start in [] if args.quick or args.weight_average else starts:
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
        threads=threads,
        notes="model.fit per-step time (callback), metrics=['accuracy'] as in the seed",
        extra={
            **train_on_batch_numbers(on_batch_ms[args.warmup :]),
            "jit_compile": str(getattr(model, "jit_compile", "?")),
        },
    )


if __name__ == "__main__":
    main()
