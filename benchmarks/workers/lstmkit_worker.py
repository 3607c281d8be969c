"""lstmkit worker: the seed's BiLSTM classifier, trained with lstmkit's jitted step. Protocol: ../bench_train.py.

Embedding(100, 64, mask_zero) -> Bidirectional(LSTM(64)) -> Dense(64, relu) -> Dense(1, sigmoid),
Adam (lr 1e-3, eps 1e-7), binary cross-entropy from logits.

- Timed steps: the protocol's batches, full 64 x 200 id matrices in data order, exactly what the
  peers get (no bucketing), so ms per batch compares like with like.
- --full-epoch: one epoch as a user runs it (`Sequential.fit`): length-bucketed batches, which
  skip padding. Its batch shapes are compiled first (one step each), as the peers' are by warmup.
- --predict: `Sequential.predict` at --predict-batch-size (sorted by length), after one untimed
  pass over the same reviews that compiles its shapes.
"""

import time

import numpy as np
import protocol

try:
    import jax

    import lstmkit
    from lstmkit.nn.batches import training_batches
    from lstmkit.nn.layers import LSTM, Bidirectional, Dense, Embedding
    from lstmkit.nn.model import Sequential
    from lstmkit.nn.steps import train_step
except ImportError as error:
    protocol.unavailable(f"lstmkit is not importable ({error}); pip install -e . from the repository root")


def main() -> None:
    args = protocol.parse_args(__doc__.splitlines()[0])
    x, y = protocol.load_data(args.data)
    model = Sequential(
        [Embedding(100, 64, mask_zero=True), Bidirectional(LSTM(64)), Dense(64, "relu"), Dense(1, "sigmoid")]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.build(seed=args.seed)
    model.input_length = x.shape[1]
    opt_state = model.optimizer.init(model.params)
    key = jax.random.key(args.seed)
    b = args.batch_size
    weight = np.ones(b, np.float32)

    times_ms, loss = [], float("nan")
    for k, start in enumerate(protocol.training_batch_starts(len(x), b, args.warmup + args.batches)):
        t0 = time.perf_counter()
        model.params, opt_state, loss_sum, _ = train_step(
            model.architecture,
            model.params,
            opt_state,
            x[start : start + b],
            y[start : start + b],
            weight,
            jax.random.fold_in(key, k),
        )
        loss = float(loss_sum) / b  # blocks until the step (and its update) is done
        times_ms.append((time.perf_counter() - t0) * 1e3)

    epoch_s, extra = None, {}
    if args.full_epoch:
        # Compile every bucketed shape first (the peers compile in their warmup too).
        lengths = (x != 0).sum(1)
        shapes = set()
        for batch in training_batches(model, model._ids(x), y, b, seed=args.seed, shuffle=True, bucket=True):
            if batch.ids.shape not in shapes:
                shapes.add(batch.ids.shape)
                jax.block_until_ready(
                    train_step(
                        model.architecture,
                        jax.tree.map(lambda a: a.copy(), model.params),
                        jax.tree.map(lambda a: a.copy(), opt_state),
                        batch.ids,
                        batch.labels,
                        batch.weight,
                        key,
                    )
                )
        t0 = time.perf_counter()
        history = model.fit(x, y, epochs=1, batch_size=b, seed=args.seed, verbose=False, opt_state=opt_state)
        epoch_s = time.perf_counter() - t0
        loss = history["loss"][-1]
        extra = {"bucket_shapes": sorted(shapes), "mean_length": float(lengths.mean())}

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
        warmup_ms=times_ms[: args.warmup],
        step_ms=times_ms[args.warmup :],
        n_reviews=len(x),
        epoch_s=epoch_s,
        predict_reviews_per_s=reviews_per_s,
        final_loss=loss,
        threads=None,
        notes="jitted step, hand-written BPTT, both directions in one scan; epoch with length-bucketed batches",
        extra=extra,
    )


if __name__ == "__main__":
    main()
