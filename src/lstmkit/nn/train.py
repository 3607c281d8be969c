"""Training, evaluation and prediction loops on top of Optax, for a `Sequential`.

The loops run on the host: batches (`lstmkit.nn.batches`) go to the jitted steps
(`lstmkit.nn.steps`, keyed on the model's `Architecture`, so models of one architecture share the
compiled steps) while the next batch is prepared on a background thread. Metrics stay on the
device until the progress bar asks for them, one step behind.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from lstmkit.allocator import mapped_large_blocks
from lstmkit.core import fused
from lstmkit.errors import LstmkitError
from lstmkit.nn import parallel
from lstmkit.nn.adversarial import PerturbationStrength, check_sizes, warn_if_stalled
from lstmkit.nn.batches import data_lengths, inference_batches, training_batches
from lstmkit.nn.optim import averaged_weights
from lstmkit.nn.steps import ensemble_eval_step, ensemble_predict_step, eval_step, predict_step, train_step

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_time")


def _labels(y):
    """Integer classes (N,) as int32; soft targets stay float32: (N,) P(class 1) or (N, K) distributions."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    return y.astype(np.float32) if y.dtype.kind == "f" else y.astype(np.int32)


def check_ready(model, *, training=True):
    """A clear error for a model that cannot run yet; and the LSTM kernel built before any trace."""
    fused.available()
    if not training:
        if model.params is None:
            raise LstmkitError("the model has no weights yet; fit it or load a trained one")
        return
    if model.architecture.optimizer is None:
        raise LstmkitError("call model.compile(...) before fit")
    if not model.layers:
        raise LstmkitError("the model has no layers; add Embedding, LSTM and Dense layers")
    model.architecture.check_loss()


def evaluate(model, x, y, *, batch_size=256):
    """Mean loss and accuracy over labelled data."""
    check_ready(model, training=False)
    return _evaluate_ids(model, model._ids(x, inference=True), _labels(y), batch_size)


def _evaluate_ids(model, ids, labels, batch_size=256, params=None):
    """Mean loss and accuracy of `params` (None: the model's, all its members when it has several)."""
    members = model.members if params is None else (params,)
    step = eval_step if len(members) == 1 else ensemble_eval_step
    with mapped_large_blocks():
        pending = [
            step(model.architecture, members[0] if len(members) == 1 else members, b.ids, b.labels, b.weight)
            for b in inference_batches(model, ids, labels, batch_size)
        ]
        loss_sum = sum(float(l) for l, _ in pending)
        correct = sum(float(c) for _, c in pending)
    return {"loss": loss_sum / max(len(ids), 1), "accuracy": correct / max(len(ids), 1)}


def predict(model, x, *, batch_size=256, pad_lengths=None, pad_rows=None):
    """Probabilities in input order: (N, 1) for a binary model, (N, K) for K classes.

    pad_lengths, pad_rows: the lengths T and row counts B a batch may be padded to (ascending),
    instead of the training ones; a server passes a few, so that few shapes are ever compiled
    (`lstmkit.nn.batches.inference_batches`).
    """
    check_ready(model, training=False)
    ids = model._ids(x, inference=True)
    out = np.zeros((len(ids), model.n_outputs), np.float32)
    if not ids:
        return out
    members = model.members  # an ensemble predicts the mean of its members' probabilities
    step, weights = (predict_step, members[0]) if len(members) == 1 else (ensemble_predict_step, members)
    with mapped_large_blocks():  # a long batch's blocks go back to the system, not into the heap
        pending = [
            (b.index, step(model.architecture, weights, b.ids))
            for b in inference_batches(model, ids, None, batch_size, pad_lengths, pad_rows)
        ]
        for index, proba in pending:
            out[index[index >= 0]] = np.asarray(proba)[index >= 0]
    return out


def fit(
    model,
    ids,
    labels,
    params,
    *,
    epochs=1,
    batch_size=64,
    validation_data=None,
    seed=0,
    bucket=True,
    shuffle_buffer=None,
    verbose=True,
    progress=True,
    early_stopping_patience=None,
    monitor="val_loss",
    on_epoch_end=None,
    initial_epoch=0,
    opt_state=None,
    history=None,
    best=None,
    adversarial=0.0,
    virtual_adversarial=0.0,
):
    """Train from `params` on ids and labels (from `training_data`); returns (params, opt_state, history).

    The model is read, never changed (its architecture, vectorizer, lengths); `Sequential.fit` keeps the result.

    Args:
        ids, labels: the training inputs, as `training_data` returns them; params: the start.
        validation_data: (x_val, y_val) evaluated after each epoch, or None.
        seed: one seed for initialisation, shuffling and dropout; same seed, same machine, same run.
        bucket: length-bucketed batches (fast); False gives fixed-length batches (Keras-identical).
        shuffle_buffer: tf.data-style shuffle buffer size, or None for a full shuffle.
        verbose: print a line per epoch; progress: also draw a progress bar while it runs.
        early_stopping_patience: stop after this many epochs without improving `monitor` (best weights restored).
        on_epoch_end: callback(epoch, params, opt_state, history, best) after each epoch
            (`Sequential.fit` hands the CLI its model with these weights, for checkpoints).
        An optimizer with a weight average (`lstmkit.nn.optim.weight_average`) is validated with the
        averaged weights, and the model ends with them (or with the best epoch's average).
        adversarial: epsilon of adversarial training on the embedded inputs, in token lengths
            (`adversarial_perturbation`); 0 = off.
        virtual_adversarial: epsilon of virtual adversarial training on the same inputs, in token
            lengths (`lstmkit.nn.adversarial.virtual_adversarial_loss`); 0 = off.
            Both start once the training loss leaves chance (`PerturbationStrength`).
        initial_epoch, opt_state, history, best: resume a run; best: early stopping's {"value", "epoch", "params", "wait"}.
    """
    opt_state = model.optimizer.init(params) if opt_state is None else opt_state
    history = {key: [] for key in HISTORY_KEYS} if history is None else history
    best = dict(best) if best is not None else {"value": None, "epoch": None, "params": None, "wait": 0}
    val = None if validation_data is None else _validation_set(model, *validation_data)
    perturbations = (float(adversarial or 0.0), float(virtual_adversarial or 0.0))
    steps = parallel.current() or _LocalSteps()
    steps.check_batch_size(batch_size)
    pads = data_lengths(model, ids, batch_size, passes=epochs) if bucket and len(ids) else None  # once per run
    run = _Run(
        model, ids, labels, val, batch_size, seed, bucket, shuffle_buffer, pads, epochs, verbose, progress, steps
    )
    for epoch in range(initial_epoch, epochs):
        params, opt_state = _fit_epoch(run, epoch, params, opt_state, history, perturbations)
        stop = (
            early_stopping_patience is not None
            and val is not None
            and _early_stopping(
                best,
                history[monitor][-1],
                epoch,
                _validated_weights(params, opt_state),
                patience=early_stopping_patience,
                lower_is_better="loss" in monitor,
            )
        )
        if on_epoch_end is not None:
            on_epoch_end(epoch, params, opt_state, history, best)
        if stop:
            if verbose:
                print(f"early stopping: no {monitor} improvement for {early_stopping_patience} epochs", flush=True)
            break
    params = _finish(params, opt_state, history, best, monitor, verbose)
    return params, opt_state, history


def _validation_set(model, x, y):
    """(ids, labels) to validate on, read as evaluation reads them."""
    return model._ids(x, inference=True), _labels(y)


class _Run(NamedTuple):
    """What every epoch of one `fit` reads: the data, how it is batched, and how much it says."""

    model: Any
    ids: list
    labels: np.ndarray
    val: tuple | None  # (ids, labels) to validate on after each epoch
    batch_size: int
    seed: int
    bucket: bool
    shuffle_buffer: int | None
    pad_lengths: list | None  # the lengths bucketed batches are padded to, chosen once (`data_lengths`)
    epochs: int
    verbose: bool
    progress: bool
    steps: Any  # _LocalSteps, or a `lstmkit.nn.parallel.DataParallel` across processes


class _LocalSteps:
    """The steps of a run in one process: the arrays stay where they are."""

    def check_batch_size(self, batch_size):
        pass  # any size splits over one process

    def local_rows(self, batch_rows):
        return None  # every row of a batch is this process's

    def start(self, params, opt_state):
        return params, opt_state

    def host(self, tree):
        return tree

    def step(self, arch, params, opt_state, batch, key, adversarial, virtual_adversarial, strength):
        return train_step(
            arch,
            params,
            opt_state,
            batch.ids,
            batch.labels,
            batch.weight,
            key,
            adversarial,
            virtual_adversarial,
            strength,
        )


def _fit_epoch(run, epoch, params, opt_state, history, perturbations):
    """One epoch: train on every batch, validate, record it in history and say it; returns (params, opt_state)."""
    t0 = time.perf_counter()
    model = run.model
    batches = training_batches(
        model,
        run.ids,
        run.labels,
        run.batch_size,
        seed=run.seed * 100003 + epoch,
        shuffle=True,
        bucket=run.bucket,
        shuffle_buffer=run.shuffle_buffer,
        gather=run.steps.local_rows(run.batch_size),  # across processes, each reads only its rows
        pad_lengths=run.pad_lengths,
    )
    bar = _progress_bar(len(run.ids), epoch, run.epochs, enabled=run.verbose and run.progress)
    ramp = _perturbation_strength(model, history, perturbations)
    epoch_key = jax.random.fold_in(jax.random.key(run.seed), epoch)
    params, opt_state = run.steps.start(params, opt_state)
    params, opt_state, loss, accuracy = _train_epoch(
        model, params, opt_state, batches, epoch_key, perturbations, bar, ramp, run.steps
    )
    params, opt_state = run.steps.host((params, opt_state))
    history["loss"].append(loss)
    history["accuracy"].append(accuracy)
    history["epoch_time"].append(time.perf_counter() - t0)
    message = (
        f"epoch {epoch + 1}/{run.epochs}: loss {loss:.4f}, accuracy {accuracy:.4f}, {history['epoch_time'][-1]:.1f} s"
    )
    if run.val is not None:
        v = _evaluate_ids(model, *run.val, params=_validated_weights(params, opt_state))
        history["val_loss"].append(v["loss"])
        history["val_accuracy"].append(v["accuracy"])
        message += f"; val_loss {v['loss']:.4f}, val_accuracy {v['accuracy']:.4f}"
    if run.verbose:
        print(message, flush=True)
        warn_if_stalled(model.class_names, history, perturbations[0])
    return params, opt_state


def _validated_weights(params, opt_state):
    """The weights validation and early stopping read: the optimizer's weight average when it keeps one."""
    averaged = averaged_weights(opt_state, params)
    return params if averaged is None else averaged


def _progress_bar(n_examples, epoch, epochs, *, enabled):
    return tqdm(
        total=n_examples,
        desc=f"epoch {epoch + 1}/{epochs}",
        unit="ex",
        disable=not enabled,
        leave=True,
        dynamic_ncols=True,
    )


def _perturbation_strength(model, history, perturbations):
    """The epoch's `PerturbationStrength`, started from the previous epoch's loss; None without perturbations."""
    if not any(perturbations):
        return None
    previous = history["loss"][-1] if history["loss"] else None
    n_classes = 2 if model.architecture.multi_label else len(model.class_names or ()) or 2  # chance: log 2 per label
    return PerturbationStrength(n_classes, previous)


def training_data(model, x, y, adversarial=0.0, virtual_adversarial=0.0):
    """(ids, labels, class_names, input_length) to train on, after the checks that need the data.

    class_names: the model's, or "0", "1", ... from the labels; input_length: the id matrix's
    width (B, T) when the model takes ids, else the model's.
    """
    input_length = model.input_length
    if model.vectorizer is None and isinstance(x, np.ndarray) and x.ndim == 2:
        input_length = x.shape[1]
    ids, labels = model._ids(x), _labels(y)
    if len(ids) == 0:
        raise LstmkitError("no training examples")
    check_sizes(model, float(adversarial or 0.0), float(virtual_adversarial or 0.0))
    class_names = model.class_names
    if class_names is None:
        n_classes = labels.shape[1] if labels.ndim == 2 else max(int(labels.max()) + 1, 2)
        class_names = [str(k) for k in range(n_classes)]
    return ids, labels, class_names, input_length


class FitInterrupted(KeyboardInterrupt):
    """Ctrl-C during an epoch, carrying the last finished step's params: each step donates the
    arrays it was given, so the ones the epoch started from no longer exist."""

    def __init__(self, params):
        super().__init__()
        self.params = params


def _train_epoch(model, params, opt_state, batches, epoch_key, perturbations, bar, ramp=None, steps=None):
    """One pass over the batches; returns (params, opt_state, mean loss, accuracy).

    ramp: a `PerturbationStrength` (step -> strength in [0, 1]), or None for no perturbations.
    steps: `_LocalSteps` (the default) or a `DataParallel`, which runs each step."""
    steps = _LocalSteps() if steps is None else steps
    t0 = time.perf_counter()
    loss_sum, correct_sum, seen = 0.0, 0.0, 0
    pending = []
    try:
        for step, batch in enumerate(batches):
            key = jax.random.fold_in(epoch_key, step)
            params, opt_state, l, c = steps.step(
                model.architecture, params, opt_state, batch, key, *perturbations, 1.0 if ramp is None else ramp(step)
            )
            pending.append((l, c, int(batch.weight.sum())))
            # Read metrics one step behind, so the host never waits for the step it just queued.
            while len(pending) > 1:
                l_, c_, n_ = pending.pop(0)
                loss_sum, correct_sum, seen = loss_sum + float(l_), correct_sum + float(c_), seen + n_
                if ramp is not None:
                    ramp.observe(step - 1, float(l_) / max(n_, 1))
                bar.update(n_)
                if step % 5 == 0:
                    rate = seen / (time.perf_counter() - t0)
                    bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct_sum / seen:.4f}", ex_s=f"{rate:.0f}")
    except KeyboardInterrupt:
        bar.close()
        raise FitInterrupted(steps.host(params)) from None
    for l_, c_, n_ in pending:
        loss_sum, correct_sum, seen = loss_sum + float(l_), correct_sum + float(c_), seen + n_
        bar.update(n_)
    rate = seen / (time.perf_counter() - t0)
    bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct_sum / seen:.4f}", ex_s=f"{rate:.0f}")
    bar.close()
    return params, opt_state, loss_sum / seen, correct_sum / seen


def _early_stopping(best, value, epoch, params, *, patience, lower_is_better):
    """Update early stopping's `best` in place with this epoch's value; True when it is time to stop."""
    better = best["value"] is None or (value < best["value"] if lower_is_better else value > best["value"])
    if better:
        best.update(value=value, epoch=epoch, params=jax.tree.map(np.asarray, params), wait=0)
        return False
    best["wait"] += 1
    return best["wait"] >= patience


def _finish(params, opt_state, history, best, monitor, verbose):
    """The weights to end with: the best epoch's, else the weight average, else the last step's."""
    if best["params"] is not None:
        history["best_epoch"] = best["epoch"] + 1
        if verbose:
            print(
                f"restored the best weights, from epoch {best['epoch'] + 1} ({monitor} {best['value']:.4f})", flush=True
            )
        return jax.tree.map(jnp.asarray, best["params"])
    averaged = averaged_weights(opt_state, params)
    return params if averaged is None else jax.tree.map(jnp.copy, averaged)
