"""Fitting a run's classifiers: one model, or an ensemble's members one after the other.

`train_one` fits one model, `train_members` an ensemble's, each with a checkpoint after every
epoch and --resume from it.

`lstmkit.tasks.run` owns the data, the rounds of self-training and the final test; this module
builds each model from the config, starts it fresh or from an interrupted fit, and fits it.
"""

from __future__ import annotations

import math
import time

from lstmkit.io import checkpoint
from lstmkit.nn import parallel
from lstmkit.tasks import preflight
from lstmkit.tasks.classifier import build_model
from lstmkit.tasks.pretrain import install_pretrained

MEMBER_SEED_STEP = 1000  # member k of an ensemble trains with the run's seed + 1000 k


def train_members(config, texts, labels, val, class_names, out, *, seed, state=None, checkpoint_extra=None, **kw):
    """`train_one` config["members"] times on the same data, member k with seed + 1000 k; returns the
    first member's model holding the others as its `ensemble` (one model when members is 1).

    Each member's checkpoints hold the members finished before it, and which member it is, so
    --resume continues the member that was training (`state`)."""
    n = int(config.get("members", 1))
    first = state["training"].get("member", 0) if state is not None else 0
    finished = list(state["model"].ensemble) if state is not None else []
    histories = list(state["training"].get("member_histories", [])) if state is not None else []
    model = None
    for k in range(first, n):
        if n > 1:
            print(f"member {k + 1}/{n} of the ensemble, seed {seed + MEMBER_SEED_STEP * k}", flush=True)
        extra = {**(checkpoint_extra or {}), "member": k, "member_histories": list(histories)}
        model = train_one(
            config, texts, labels, val, class_names, out, seed=seed + MEMBER_SEED_STEP * k,
            state=state if k == first else None, finished=tuple(finished), checkpoint_extra=extra,
            vectorizer=model.vectorizer if model is not None else None, **kw,  # one vocabulary for all members
        )  # fmt: skip
        finished.append(model.params)
        histories.append(model.history)
    model.set_members(finished)  # one model: its own history stays
    if n > 1:
        result = model.evaluate(val.texts, val.labels, return_dict=True)
        model.set_members(finished, history={**histories[0], "other_members": histories[1:], "ensemble_val": result})
        print(f"the ensemble of {n}: val_loss {result['loss']:.4f}, val_accuracy {result['accuracy']:.4f}", flush=True)
    return model


def train_one(
    config,
    texts,
    labels,
    val,
    class_names,
    out,
    *,
    seed,
    epochs,
    pre=None,
    state=None,
    verbose=True,
    progress=True,
    checkpoint_extra=None,
    arrays=None,
    on_epoch_end=None,
    finished=(),
    vectorizer=None,
):
    """Build a fresh classifier per config, fit it on (texts, labels) for `epochs` with checkpoints; return it.

    pre: a pretrained directory to adopt; state: `_resume_state` of an interrupted fit to continue.
    on_epoch_end: called after each epoch instead of saving a checkpoint to `out` (tune's trials).
    finished: the weights of an ensemble's members trained before this one, saved in its
    checkpoints (`train_members`); vectorizer: theirs, adapted already.
    """
    steps_per_epoch = math.ceil(len(texts) / config["batch_size"])
    model = build_model(
        {**config, "epochs": epochs},
        len(class_names),
        steps_per_epoch,  # the schedule spans these epochs
        class_names=class_names,
        vectorizer=state["model"].vectorizer if state is not None else vectorizer,
    )
    if state is not None:
        opt_state, history, initial_epoch, best = _resume_into(model, state)
    else:
        _start_fresh(model, texts, pre, seed, config, adapted=vectorizer is not None)
        opt_state, history, initial_epoch, best = None, None, 0, None
    if on_epoch_end is None and parallel.is_writer():
        preflight.check_room(out, model.params)
        on_epoch_end = _checkpoint_saver(out, config, checkpoint_extra or {}, arrays or {}, finished)
    model.fit(
        texts,
        labels,
        epochs=epochs,
        batch_size=config["batch_size"],
        validation_data=(val.texts, val.labels),
        seed=seed,
        bucket=config["bucket"],
        shuffle_buffer=config["shuffle_buffer"] or None,
        verbose=verbose,
        progress=progress,
        early_stopping_patience=config["early_stopping"] or None,
        on_epoch_end=on_epoch_end,
        initial_epoch=initial_epoch,
        opt_state=opt_state,
        history=history,
        best=best,
        adversarial=config.get("adversarial", 0.0),  # absent from runs saved before it existed
        virtual_adversarial=config.get("virtual_adversarial", 0.0),
    )
    return model


def _resume_into(model, state):
    """Give a fresh model the interrupted fit's weights; returns (opt_state, history, initial_epoch,
    early stopping's best) to continue it from."""
    model.set_weights(state["model"].params)
    training = state["training"]
    best = {
        "value": training["best_value"],
        "epoch": training["best_epoch"],
        "params": state["best_params"],
        "wait": training["wait"],
    }
    return state["opt_state"], state["history"], training["epoch"] + 1, best


def _start_fresh(model, texts, pre, seed, config, adapted=False):
    """A new run's vocabulary (adapted to texts, or the pretrained one; kept when `adapted`) and
    seeded weights, the pretrained layers installed."""
    t0 = time.perf_counter()
    if pre is None and not adapted:  # token rows (--stream) bring the vocabulary adapted when they were cached
        vocabulary = getattr(texts, "vocabulary", None)
        model.vectorizer.set_vocabulary(vocabulary) if vocabulary is not None else model.vectorizer.adapt(texts)
        print(f"vocabulary: {model.vectorizer.vocab_size:,} tokens ({time.perf_counter() - t0:.1f} s)", flush=True)
    model.build(seed=seed)
    if pre is not None:
        install_pretrained(model, pre)
        print(
            f"pretrained: vocabulary ({model.vectorizer.vocab_size:,} tokens), embedding and first LSTM layer from {config['pretrained']}",
            flush=True,
        )


def _checkpoint_saver(out, config, checkpoint_extra, arrays, finished=()):
    """The `on_epoch_end` callback of a run: the model directory saved as "training" after each
    epoch, with what --resume needs (optimizer state, epoch, early stopping's state, `arrays`,
    the weights of the ensemble's `finished` members after the model's own)."""

    def save_checkpoint(epoch, model, opt_state, history, best):
        training = {
            "epoch": epoch,
            "best_value": best["value"],
            "best_epoch": best["epoch"],
            "wait": best["wait"],
            **checkpoint_extra,
        }
        checkpoint.save_model(
            model,
            out,
            train_config=config,
            history=history,
            opt_state=opt_state,
            training=training,
            best_params=best["params"],
            arrays=arrays,
            members=(model.params, *finished),
            status="training",
        )

    return save_checkpoint
