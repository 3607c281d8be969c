"""lstmkit worker: the model of the protocol's options, built and trained as `lstmkit train` does. Protocol: ../bench_train.py.

The model comes from `lstmkit.tasks.classifier.build_model` with a preset's settings (`seed`, or
`default` with --bucket) overridden by the options: Embedding(V, E, mask) [+ word pairs]
[-> SpatialDropout1D] -> (Bi)LSTM(H) -> pooling [-> Dropout] -> Dense(64, relu) [-> Dropout]
-> Dense(1, sigmoid); Adam (eps 1e-7) [+ clipping, cosine schedule, weight average]; binary
cross-entropy from logits. Adversarial training is always off (the peers lack it).

- Without --bucket: the protocol's batches, full B x T id matrices in data order, exactly what
  the peers get, so ms per batch compares like with like.
- With --bucket: the first epoch's batches as `lstmkit train` makes them for the default
  preset's 2 epochs (shuffled, each holding texts of one of at most 8 lengths chosen from the
  data; `lstmkit.nn.batches.training_batches`). Every batch shape is compiled
  first, untimed (the peers compile in their warmup too); then up to --batches batches of each
  shape are timed, and the cost of an average batch of the epoch is the shapes' medians weighted
  by how many of the epoch's batches have that shape (ms_per_batch; step_ms has every step).
- --full-epoch: one epoch as a user runs it (`Sequential.fit`): length-bucketed batches.
- --predict: `Sequential.predict` at --predict-batch-size (sorted by length), after one untimed
  pass over the same reviews that compiles its shapes.

Threads: the kernel's pool takes LSTMKIT_THREADS (set from --threads when given), else the CPUs
this process may use (taskset); XLA's threads follow the same CPUs.
"""

import os
import time
from types import SimpleNamespace

import numpy as np
import protocol

ARGS = protocol.parse_args(__doc__.splitlines()[0])
if ARGS.threads:
    os.environ["LSTMKIT_THREADS"] = str(ARGS.threads)  # before the kernel's pool starts

try:
    import jax

    import lstmkit
    from lstmkit.nn.batches import data_lengths, training_batches
    from lstmkit.nn.steps import train_step
    from lstmkit.tasks.classifier import build_model
    from lstmkit.tasks.presets import resolve
except ImportError as error:
    protocol.unavailable(f"lstmkit is not importable ({error}); pip install -e . from the repository root")


def config_of(args, width: int) -> dict:
    """The `lstmkit train` settings of this model: a preset, overridden by the options."""
    return resolve(
        "default" if args.bucket else "seed",
        max_tokens=args.vocab,
        embedding_dim=args.embed,
        lstm_units=args.hidden,
        bidirectional=args.direction == "bi",
        pooling=args.pooling,
        dense_units=args.dense,
        bigram_buckets=args.word_pairs,
        dropout=args.dropout,
        embedding_dropout=args.embedding_dropout,
        learning_rate=args.learning_rate,
        clipnorm=args.clipnorm,
        weight_average=args.weight_average,
        table_updates=args.table_updates,
        sequence_length=args.sequence_length or width,
        batch_size=args.batch_size,
        adversarial=0.0,
        seed=args.seed,
    )


def timed_step(model, state, batch, key) -> tuple[float, float]:
    """One training step on `batch`, finished; returns (ms, loss)."""
    t0 = time.perf_counter()
    model.params, state["opt"], loss_sum, _ = train_step(
        model.architecture, model.params, state["opt"], batch.ids, batch.labels, batch.weight, key
    )
    loss = float(loss_sum) / max(float(batch.weight.sum()), 1.0)  # blocks until the update is done
    return (time.perf_counter() - t0) * 1e3, loss


def compile_shape(model, state, batch, key) -> float:
    """Compile (and run once, on copies of the weights) the step for this batch's shape; ms."""
    t0 = time.perf_counter()

    def copy(tree):  # the step donates its inputs: it gets copies, the real weights stay
        return jax.tree.map(lambda a: a.copy(), tree)

    jax.block_until_ready(
        train_step(
            model.architecture, copy(model.params), copy(state["opt"]), batch.ids, batch.labels, batch.weight, key
        )
    )
    return (time.perf_counter() - t0) * 1e3


def train_bucketed(model, state, x, y, args, key) -> tuple[list, list, float, dict]:
    """Time the first epoch's bucketed batches per shape; (warmup ms, step ms, ms per batch, extra)."""
    batches = list(
        training_batches(
            model,
            x,
            y,
            args.batch_size,
            seed=args.seed * 100003,
            shuffle=True,
            bucket=True,
            pad_lengths=data_lengths(model, x, args.batch_size, passes=2),  # as lstmkit train chooses them
        )
    )
    counts = {}
    for batch in batches:
        counts[batch.ids.shape[1]] = counts.get(batch.ids.shape[1], 0) + 1
    warmup_ms, step_ms, per_shape, loss = [], [], {}, float("nan")
    for k, batch in enumerate(batches):
        length = batch.ids.shape[1]
        step_key = jax.random.fold_in(key, k)
        if length not in per_shape:
            per_shape[length] = []
            warmup_ms.append(compile_shape(model, state, batch, step_key))
        if len(per_shape[length]) < args.batches:
            ms, loss = timed_step(model, state, batch, step_key)
            per_shape[length].append(ms)
            step_ms.append(ms)
        if all(len(per_shape.get(t, ())) >= args.batches for t in counts):
            break
    weighted = sum(counts[t] * float(np.median(per_shape[t])) for t in counts) / len(batches)
    extra = {
        "epoch_weighted": True,
        "shape_batches": {str(t): counts[t] for t in sorted(counts)},
        "shape_ms_median": {str(t): float(np.median(per_shape[t])) for t in sorted(per_shape)},
        "final_loss_bucketed": loss,
    }
    return warmup_ms, step_ms, weighted, extra


def train_fixed(model, state, x, y, args, key) -> tuple[list, list]:
    """The protocol's full-width batches in data order; (warmup ms, step ms)."""
    b = args.batch_size
    weight = np.ones(b, np.float32)
    times_ms = []
    for k, start in enumerate(protocol.training_batch_starts(len(x), b, args.warmup + args.batches)):
        batch = SimpleNamespace(ids=x[start : start + b], labels=y[start : start + b], weight=weight)
        ms, state["loss"] = timed_step(model, state, batch, jax.random.fold_in(key, k))
        times_ms.append(ms)
    return times_ms[: args.warmup], times_ms[args.warmup :]


def main() -> None:
    args = ARGS
    x, y = protocol.load_data(args.data)
    config = config_of(args, x.shape[1])
    steps_per_epoch = protocol.epoch_batches(len(x), args.batch_size)
    model = build_model(config, 2, steps_per_epoch, class_names=["0", "1"])
    # It reads id matrices, not texts: no vectorizer, and the training length the vectorizer
    # would have (texts are cut to it).
    model.vectorizer, model.input_length = None, config["sequence_length"]
    model.build(seed=args.seed)
    state = {"opt": model.optimizer.init(model.params), "loss": float("nan")}
    key = jax.random.key(args.seed)

    ms_per_batch, extra = None, {}
    if args.bucket:
        warmup_ms, step_ms, ms_per_batch, extra = train_bucketed(model, state, x, y, args, key)
        loss = extra["final_loss_bucketed"]
    else:
        warmup_ms, step_ms = train_fixed(model, state, x, y, args, key)
        loss = state["loss"]

    epoch_s = None
    if args.full_epoch:
        t0 = time.perf_counter()
        history = model.fit(x, y, epochs=1, batch_size=args.batch_size, seed=args.seed, verbose=False)
        epoch_s = time.perf_counter() - t0
        loss = history["loss"][-1]

    reviews_per_s = None
    if args.predict:
        p = args.predict_batch_size
        n_predict = min(args.predict_batches * p, (len(x) // p) * p)
        model.predict(x[:n_predict], batch_size=p)  # compiles the shapes
        t0 = time.perf_counter()
        model.predict(x[:n_predict], batch_size=p)
        reviews_per_s = n_predict / (time.perf_counter() - t0)

    protocol.emit(
        "lstmkit",
        args,
        versions={"lstmkit": lstmkit.__version__, "jax": jax.__version__},
        warmup_ms=warmup_ms,
        step_ms=step_ms,
        n_reviews=len(x),
        epoch_s=epoch_s,
        predict_reviews_per_s=reviews_per_s,
        final_loss=loss,
        threads=protocol.thread_count(args),
        notes="jitted step, hand-written BPTT, both directions in one scan"
        + ("; length-bucketed batches as lstmkit train" if args.bucket else "; the protocol's full-width batches"),
        extra=extra,
        ms_per_batch=ms_per_batch,
    )


if __name__ == "__main__":
    main()
