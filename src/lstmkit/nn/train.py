"""Training, evaluation and prediction loops on top of Optax, for a `Sequential`.

Everything inside a step is jitted, keyed on the model's `Architecture` (a value: models of one
architecture share the compiled steps), never on the model object; one compiled train step per batch shape (batches are
length-bucketed, so few shapes occur), parameters and optimizer state donated so they update in
place, and the next batch prepared on a background thread while the step runs. Metrics stay on
the device until the progress bar asks for them.
"""

from __future__ import annotations

import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from lstmkit.core import fused
from lstmkit.data.batching import Batch, iterate_batches, prefetch
from lstmkit.errors import LstmkitError
from lstmkit.nn.adversarial import (
    adversarial_perturbation,
    embedded_inputs,
    embedding_index,
    virtual_adversarial_direction,
    virtual_adversarial_kl,
)
from lstmkit.nn.optim import averaged_weights


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


@partial(jax.jit, static_argnums=(0, 7, 8), donate_argnums=(1, 2))
def _train_step(
    arch, params, opt_state, ids, labels, weight, key, adversarial=0.0, virtual_adversarial=0.0, strength=1.0
):
    """One optimizer step; returns new params and state, and the batch's loss and correct sums.

    adversarial > 0 adds adversarial training (Goodfellow et al. 2015; Miyato et al. 2017 for text):
    the batch is fitted a second time with its embedded inputs moved by `adversarial` token
    lengths (`adversarial_perturbation`) in the direction that raises the loss most, to first
    order. virtual_adversarial > 0 adds the virtual adversarial loss (`virtual_adversarial_loss`):
    the prediction on the batch moved by that many token lengths where it changes fastest is
    pulled towards the clean one, no label needed. The loss and gradient are the sums; the
    reported loss is the clean one. Each costs one to two more forward and backward passes.
    strength (traced, in [0, 1]) scales both sizes (`PerturbationStrength`: 0 until learning starts).
    """
    if adversarial:
        embedded, mask = embedded_inputs(arch, params, ids)  # sizes the perturbation
        grad_fn = jax.value_and_grad(arch.loss_fn, argnums=(0, 5), has_aux=True)
        (loss, correct), (grads, d_embedded) = grad_fn(params, ids, labels, weight, key, jnp.zeros_like(embedded))
        r_adv = jax.lax.stop_gradient(adversarial_perturbation(d_embedded, embedded, mask, adversarial * strength))
        # The same dropout key: the direction was computed for this very network.
        adv_grads = jax.grad(lambda p: arch.loss_fn(p, ids, labels, weight, key, r_adv)[0])(params)
        grads = jax.tree.map(jnp.add, grads, adv_grads)
    else:
        (loss, correct), grads = jax.value_and_grad(arch.loss_fn, has_aux=True)(params, ids, labels, weight, key)
    if virtual_adversarial:
        vat_key = jax.random.key(0) if key is None else key
        z_clean, r_vadv = virtual_adversarial_direction(arch, params, ids, vat_key, virtual_adversarial * strength)
        vat_grads = jax.grad(virtual_adversarial_kl, argnums=1)(arch, params, ids, weight, vat_key, z_clean, r_vadv)
        grads = jax.tree.map(jnp.add, grads, vat_grads)
    updates, opt_state = arch.make_optimizer().update(grads, opt_state, params)
    params = jax.tree.map(lambda p, u: p + u, params, updates)
    return params, opt_state, loss * weight.sum(), correct


@partial(jax.jit, static_argnums=(0,))
def _eval_step(arch, params, ids, labels, weight):
    """The batch's summed loss and correct count (B,) -> two scalars."""
    loss, correct = arch.loss_fn(params, ids, labels, weight)
    return loss * weight.sum(), correct


@partial(jax.jit, static_argnums=(0,))
def _predict_step(arch, params, ids):
    """Probabilities (B, K) for ids (B, T)."""
    return arch.apply(params, ids)


# jit keys on the architecture, a value: every model of one architecture compiles once per batch
# shape, and the cache holds the architecture, not the model (its weights are arguments).


def pad_multiple(max_length):
    """Batch lengths are rounded up to a quarter of the maximum: at most 4 shapes to compile."""
    return max(8, -(-max_length // 4)) if max_length else 32


def _batches(model, ids, labels, batch_size, *, seed, shuffle, bucket, shuffle_buffer=None):
    max_length = _max_length(model)
    it = iterate_batches(
        ids,
        labels,
        batch_size,
        seed=seed,
        shuffle=shuffle,
        bucket=bucket,
        shuffle_buffer=shuffle_buffer,
        pad_multiple=pad_multiple(max_length),
        max_length=max_length,
    )
    return prefetch(it, 2)


def _inference_batches(model, ids, labels, batch_size, pad_lengths=None):
    """Batches for evaluation and prediction, sorted by length (one bucket window over all), so
    little padding is computed; each Batch's `index` says which input rows it holds. Batches
    longer than training are split to hold no more tokens than batch_size x the training length.

    A request smaller than a batch is not padded to one: its rows are the next power of two
    (1 for one text) and its length its longest text's, rounded up to `pad_multiple`, so one
    review of 993 tokens is one (1, 1000) batch, not two (128, 1600) ones.
    pad_lengths: the lengths a batch may take, instead of the training ones and their doublings;
    a caller that gives them (the server, which compiles its shapes ahead) gets batch_size rows."""
    if pad_lengths is None:
        rows = min(batch_size, 1 << max(len(ids) - 1, 0).bit_length())
    else:
        rows = batch_size
    window = len(ids) // rows + 1
    trained, longest = _max_length(model), _max_length(model, inference=True)
    batches = iterate_batches(
        ids,
        labels,
        rows,
        shuffle=False,
        bucket=True,
        bucket_window=window,
        max_length=longest,
        pad_multiple=pad_multiple(trained),
        pad_lengths=pad_lengths or (_inference_pad_lengths(trained, longest) if len(ids) > rows else None),
    )
    return _split_long(batches, batch_size * trained) if trained and longest and longest > trained else batches


def _split_long(batches, max_tokens):
    """Each batch of more than max_tokens (rows x steps) as smaller ones of max_tokens // steps
    rows (the last one filled with weight-0 rows of index -1): memory stays that of a batch at the
    training length, and each length gets one row count, so one more shape to compile at most."""
    for b in batches:
        B, T = b.ids.shape
        rows = max(1, max_tokens // T)
        if rows >= B:
            yield b
            continue
        for start in range(0, B, rows):
            part = Batch(*(a[start : start + rows] for a in b))
            short = rows - len(part.weight)
            if short:  # filler: copies of the first row, weight 0, index -1
                fill = Batch(*(np.repeat(a[:1], short, axis=0) for a in part))
                fill = fill._replace(weight=np.zeros_like(fill.weight), index=np.full_like(fill.index, -1))
                part = Batch(*(np.concatenate([a, f]) for a, f in zip(part, fill)))
            yield part


def _inference_pad_lengths(trained, longest):
    """Batch lengths for inference: the training ones, then doubling up to the inference length
    (2L, 4L, ... capped at it), so texts longer than training add few shapes to compile."""
    if not trained or not longest or longest <= trained:
        return None
    step = pad_multiple(trained)
    lengths = list(range(step, trained, step)) + [trained]
    while lengths[-1] < longest:
        lengths.append(min(2 * lengths[-1], longest))
    return lengths


def _max_length(model, inference=False):
    """The longest sequence the model reads: the vectorizer's length (its inference length when
    inference and one is set), or the id matrix's width."""
    if model.vectorizer is not None:
        if inference and model.inference_length:
            return model.inference_length
        return model.vectorizer.output_sequence_length
    return model.input_length


def evaluate(model, x, y, *, batch_size=256):
    """Mean loss and accuracy over labelled data."""
    check_ready(model, training=False)
    return _evaluate_ids(model, model._ids(x, inference=True), _labels(y), batch_size)


def _evaluate_ids(model, ids, labels, batch_size=256, params=None):
    params = model.params if params is None else params
    pending = [
        _eval_step(model.architecture, params, b.ids, b.labels, b.weight)
        for b in _inference_batches(model, ids, labels, batch_size)
    ]
    loss_sum = sum(float(l) for l, _ in pending)
    correct = sum(float(c) for _, c in pending)
    return {"loss": loss_sum / max(len(ids), 1), "accuracy": correct / max(len(ids), 1)}


def predict(model, x, *, batch_size=256, pad_lengths=None):
    """Probabilities in input order: (N, 1) for a binary model, (N, K) for K classes.

    pad_lengths: the lengths T a batch may be padded to (ascending), instead of the training
    ones; a server passes a few, so that few shapes are ever compiled.
    """
    check_ready(model, training=False)
    ids = model._ids(x, inference=True)
    out = np.zeros((len(ids), model.n_outputs), np.float32)
    if not ids:
        return out
    pending = [
        (b.index, _predict_step(model.architecture, model.params, b.ids))
        for b in _inference_batches(model, ids, None, batch_size, pad_lengths)
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

    The model is read, never changed: its architecture, vectorizer and lengths. `Sequential.fit`
    keeps what this returns.

    Args:
        ids, labels: the training inputs, as `training_data` returns them; params: the start.
        validation_data: (x_val, y_val) evaluated after each epoch, or None.
        seed: one seed for initialisation, shuffling and dropout; same seed, same machine, same run.
        bucket: length-bucketed batches (fast); False gives fixed-length batches (Keras-identical).
        shuffle_buffer: tf.data-style shuffle buffer size, or None for a full shuffle.
        verbose: print a line per epoch; progress: also draw a progress bar while it runs.
        early_stopping_patience: stop after this many epochs without improving `monitor`, and
            restore the best weights.
        on_epoch_end: callback(epoch, params, opt_state, history, best) after each epoch
            (`Sequential.fit` hands the CLI its model with these weights, for checkpoints).
        An optimizer with a weight average (`lstmkit.nn.model.weight_average`) is validated with the
        averaged weights, and the model ends with them (or with the best epoch's average).
        adversarial: epsilon of adversarial training on the embedded inputs, in token lengths
            (`adversarial_perturbation`); 0 = off.
        virtual_adversarial: epsilon of virtual adversarial training on the same inputs, in token
            lengths (`lstmkit.nn.adversarial.virtual_adversarial_loss`); 0 = off.
            Both start once the training loss leaves chance (`PerturbationStrength`).
        initial_epoch, opt_state, history, best: continue an interrupted run (resume); best is
            early stopping's {"value", "epoch", "params", "wait"} so far.
    """
    if opt_state is None:
        opt_state = model.optimizer.init(params)
    if history is None:
        history = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": [], "epoch_time": []}
    val = None
    if validation_data is not None:
        val = (model._ids(validation_data[0], inference=True), _labels(validation_data[1]))
    perturbations = (float(adversarial or 0.0), float(virtual_adversarial or 0.0))
    base_key = jax.random.key(seed)
    best = dict(best) if best is not None else {"value": None, "epoch": None, "params": None, "wait": 0}
    for epoch in range(initial_epoch, epochs):
        t0 = time.perf_counter()
        batches = _batches(
            model,
            ids,
            labels,
            batch_size,
            seed=seed * 100003 + epoch,
            shuffle=True,
            bucket=bucket,
            shuffle_buffer=shuffle_buffer,
        )
        bar = tqdm(
            total=len(ids),
            desc=f"epoch {epoch + 1}/{epochs}",
            unit="ex",
            disable=not (verbose and progress),
            leave=True,
            dynamic_ncols=True,
        )
        previous = history["loss"][-1] if history["loss"] else None
        ramp = PerturbationStrength(len(model.class_names or ()) or 2, previous) if any(perturbations) else None
        params, opt_state, loss, accuracy = _train_epoch(
            model, params, opt_state, batches, jax.random.fold_in(base_key, epoch), perturbations, bar, ramp
        )
        history["loss"].append(loss)
        history["accuracy"].append(accuracy)
        history["epoch_time"].append(time.perf_counter() - t0)
        message = (
            f"epoch {epoch + 1}/{epochs}: loss {loss:.4f}, accuracy {accuracy:.4f}, {history['epoch_time'][-1]:.1f} s"
        )
        averaged = averaged_weights(opt_state)
        if val is not None:
            v = _evaluate_ids(model, *val, params=params if averaged is None else averaged)
            history["val_loss"].append(v["loss"])
            history["val_accuracy"].append(v["accuracy"])
            message += f"; val_loss {v['loss']:.4f}, val_accuracy {v['accuracy']:.4f}"
        if verbose:
            print(message, flush=True)
            _warn_if_adversarial_stalls(model, history, perturbations[0])
        stop = False
        if early_stopping_patience is not None and val is not None:
            stop = _early_stopping(
                best,
                history[monitor][-1],
                epoch,
                params if averaged is None else averaged,
                patience=early_stopping_patience,
                lower_is_better="loss" in monitor,
            )
        if on_epoch_end is not None:
            on_epoch_end(epoch, params, opt_state, history, best)
        if stop:
            if verbose:
                print(f"early stopping: no {monitor} improvement for {early_stopping_patience} epochs", flush=True)
            break
    params = _finish(params, opt_state, history, best, monitor, verbose)
    return params, opt_state, history


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
    adversarial = float(adversarial or 0.0)
    if adversarial < 0:
        raise LstmkitError(
            f"--adversarial must be 0 (off) or a positive perturbation size in token lengths, got {adversarial}"
        )
    virtual_adversarial = float(virtual_adversarial or 0.0)
    if not virtual_adversarial >= 0:
        raise LstmkitError(
            "--virtual-adversarial must be 0 (off) or a positive perturbation size in token lengths, "
            f"got {virtual_adversarial}"
        )
    if adversarial or virtual_adversarial:
        embedding_index(model)
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


def _train_epoch(model, params, opt_state, batches, epoch_key, perturbations, bar, ramp=None):
    """One pass over the batches; returns (params, opt_state, mean loss, accuracy).

    ramp: a `PerturbationStrength` (step -> strength in [0, 1]), or None for no perturbations."""
    t0 = time.perf_counter()
    loss_sum, correct_sum, seen = 0.0, 0.0, 0
    pending = []
    try:
        for step, batch in enumerate(batches):
            key = jax.random.fold_in(epoch_key, step)
            params, opt_state, l, c = _train_step(
                model.architecture,
                params,
                opt_state,
                batch.ids,
                batch.labels,
                batch.weight,
                key,
                *perturbations,
                1.0 if ramp is None else ramp(step),
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
        raise FitInterrupted(params) from None
    for l_, c_, n_ in pending:
        loss_sum, correct_sum, seen = loss_sum + float(l_), correct_sum + float(c_), seen + n_
        bar.update(n_)
    rate = seen / (time.perf_counter() - t0)
    bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct_sum / seen:.4f}", ex_s=f"{rate:.0f}")
    bar.close()
    return params, opt_state, loss_sum / seen, correct_sum / seen


class PerturbationStrength:
    """How strongly (0 to 1) a step perturbs its batch: a guard against adversarial training that stalls.

    A perturbation that helps once the model has learned something can keep a model at chance from
    the first step for good: on short texts each word moves a lot (IMDB's first sentences never
    left chance at 0.3 word lengths, where whole reviews learn at once). So the strength is 1
    unless the training loss, over the last WINDOW steps, is still at chance (above HOLD x log K)
    after STALL steps; it is then 0 until that loss falls below it, and grows back to 1 over RAMP
    steps. The state at an epoch's start comes from the previous epoch's mean loss (below
    the line: full strength; above: held until learning starts), so a resumed run computes what an
    uninterrupted one does.
    """

    WINDOW, HOLD, STALL, RAMP = 20, 0.95, 200, 100

    def __init__(self, n_classes, previous_epoch_loss=None):
        self.threshold = self.HOLD * float(np.log(max(n_classes, 2)))
        self.learned = previous_epoch_loss is not None and previous_epoch_loss < self.threshold
        self.held = previous_epoch_loss is not None and not self.learned
        self.resumed_at = None
        self.recent = []

    def observe(self, step, mean_loss):
        """The loss per example of a finished step (read one step behind)."""
        if self.learned:
            return
        self.recent = (self.recent + [mean_loss])[-self.WINDOW :]
        if len(self.recent) == self.WINDOW and sum(self.recent) / self.WINDOW < self.threshold:
            self.learned = True
            if self.held:
                self.resumed_at = step
        elif step >= self.STALL:
            self.held = True

    def __call__(self, step):
        if self.resumed_at is not None:
            return min(1.0, (step - self.resumed_at) / self.RAMP)
        return 0.0 if self.held else 1.0


def _warn_if_adversarial_stalls(model, history, adversarial):
    chance = float(np.log(len(model.class_names)))
    if adversarial and history["loss"][-1] > 0.99 * chance:
        print(
            f"warning: the training loss is still at chance ({chance:.3f}); an --adversarial perturbation "
            f"this large ({adversarial}) can stop learning altogether (it is held off until the loss leaves chance; "
            "if it never does, try a smaller one)",
            flush=True,
        )


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
    if averaged_weights(opt_state) is not None:
        return jax.tree.map(jnp.copy, averaged_weights(opt_state))
    return params
