"""The main job: train a classifier from a preset on a data source, checkpoint it, test it.

This is what `lstmkit train` runs; it owns data loading, splits, checkpoints and reporting, and
leaves the numerics to `lstmkit.nn.model` and `lstmkit.nn.train`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from lstmkit.data.dataset import train_val_split
from lstmkit.data.imdb import imdb_groups
from lstmkit.data.sources import load_splits
from lstmkit.errors import LstmkitError
from lstmkit.io import checkpoint, output_folder
from lstmkit.nn import parallel
from lstmkit.nn.model import load_model
from lstmkit.tasks import multilabel, preflight
from lstmkit.tasks.calibration import calibration_report, describe, fit_temperature, with_temperature
from lstmkit.tasks.classifier import build_model, with_class_weights
from lstmkit.tasks.fitting import train_members
from lstmkit.tasks.metrics import classification_report
from lstmkit.tasks.presets import round_config
from lstmkit.tasks.pretrain import check_settings, load_pretrained
from lstmkit.tasks.selftrain import pseudo_label_accuracy, pseudo_labels, read_unlabeled_texts, with_pseudo_labels
from lstmkit.tasks.streamed import load_streamed


def train_run(config, data, out, *, overwrite=False, resume=False, **kw):
    """Train per `config` (see `lstmkit.tasks.presets`), write the model directory to `out`, return test metrics.

    `out` is locked for the run; it must be new, empty, or a model directory to replace
    (`overwrite`) or continue (`resume`): the user's files are never replaced. Keywords as `_train_run`'s.
    """
    out = Path(out)
    if not parallel.is_writer():  # one of several processes (`lstmkit.nn.parallel`): process 0 owns `out`
        return _train_run(config, data, out, resume=resume, **kw)
    with output_folder.claim_output(out, overwrite=overwrite, resume=resume) as said:
        if said:
            print(said, flush=True)
        return _train_run(config, data, out, resume=resume, **kw)


def _train_run(
    config,
    data,
    out,
    *,
    test_data=None,
    resume=False,
    verbose=True,
    progress=True,
    pretrained=None,
    unlabeled=(),
    stream=False,
    **reading,
):
    """train_run's work, once `out` is locked and checked.

    pretrained: a directory written by `lstmkit pretrain`; the classifier adopts its vocabulary,
    embedding and first LSTM layer (sizes must match the config) instead of adapting its own.
    reading: how to read data and test_data files, `lstmkit.data.sources.load_splits`'s keywords
    text_column, label_column, file_format, header, multi_label (None: detected; a resumed
    multi-label run reads its data as multi-label again); stream: as a cached token file
    (`lstmkit.tasks.streamed`).
    unlabeled: sources of unlabeled text for self-training (config "self_training" rounds > 0,
    see `lstmkit.tasks.selftrain`): each round trains a fresh model on train plus the texts the
    previous model labels with confidence >= config "pseudo_confidence".
    """
    t_start = time.perf_counter()
    parallel.barrier("lstmkit: output checked")  # the others read `out` once process 0 has checked it
    config, unlabeled, pre = _settle_config(config, out, resume, unlabeled, pretrained)
    rounds, seed = int(config.get("self_training", 0)), int(config["seed"])
    reading["multi_label"] = reading.get("multi_label") or config.get("multi_label") or None
    train, val, test = (load_streamed if stream else load_data)(config, data, test_data, reading, t_start)
    class_names = list(train.class_names)
    config = with_class_weights(config, train.labels, class_names)
    unlabeled_texts = read_unlabeled_texts(unlabeled, rounds, reading.get("text_column"), seed)
    print("config: " + json.dumps(config, sort_keys=True), flush=True)

    data_digest = preflight.data_digest(train)
    state = _resume_state(out, config, class_names, len(unlabeled_texts)) if resume else None
    if state is not None and state["training"].get("data_sha256", data_digest) != data_digest:
        raise LstmkitError(
            f"the interrupted run in {out} trained on other data (or another split of it); resume it with "
            "the same --data, or start again with --overwrite"
        )
    first_round = state["training"].get("round", 0) if state else 0
    rounds_log = list(state["training"].get("rounds", [])) if state else []
    model = None
    for r in range(first_round, rounds + 1):
        texts, labels, arrays = train.texts, train.labels, {}
        if r > 0:
            texts, labels, arrays = _round_data(r, config, model, train, val, unlabeled_texts, state, rounds_log)
        epochs = int(
            config["self_training_epochs"] if r > 0 and config.get("self_training_epochs") else config["epochs"]
        )
        model = train_members(
            round_config(config, r),
            texts,
            labels,
            val,
            class_names,
            out,
            seed=seed + r,
            epochs=epochs,
            pre=pre if r == 0 else None,
            state=state if r == first_round else None,
            verbose=verbose,
            progress=progress,
            checkpoint_extra={"round": r, "rounds": rounds_log, "data_sha256": data_digest},
            arrays=arrays,
        )
        state = None
    return test_and_save(model, test, val, class_names, config, out, rounds_log, t_start)


def _settle_config(config, out, resume, unlabeled, pretrained):
    """(config, unlabeled sources, pretrained directory or None): a resumed run's saved settings,
    and the checks that need no data."""
    if resume:
        _, saved = checkpoint.read_config(out)
        if saved.get("status") != "training":
            raise LstmkitError(f"{out} holds a finished model, not an interrupted run; train without --resume")
        config = {**saved["train_config"], "epochs": config["epochs"]}
        print(f"resuming the run in {out} with its saved configuration", flush=True)
    rounds = int(config.get("self_training", 0))
    unlabeled = list(unlabeled) or list(config.get("unlabeled", []))  # a resumed run reads its saved sources
    if rounds and not unlabeled:
        raise LstmkitError(
            "self-training needs unlabeled text: pass --unlabeled SOURCE (for IMDB: the aclImdb_unsup.tar.gz archive), or --self-training 0"
        )
    if unlabeled and not rounds:
        raise LstmkitError(
            "--unlabeled is read only for self-training; add --self-training 1 (or more rounds), or drop --unlabeled"
        )
    if rounds:
        config = {**config, "unlabeled": [str(u) for u in unlabeled]}
    pre = None
    pretrained = pretrained or config.get("pretrained")  # a resumed run re-adopts its pretrained vocabulary
    if pretrained:
        pre = load_pretrained(pretrained)
        check_settings(pre, config)  # before loading the data, so a size mismatch fails at once
        config = {**config, "pretrained": str(pretrained)}
    return config, unlabeled, pre


def load_data(config, data, test_data, reading, t_start):
    """(train, validation, test) datasets, validation carved from train per config; `reading`: the
    columns, file_format and header keywords of `load_splits`."""
    seed = int(config["seed"])
    train, test = load_splits(data, test_data=test_data, seed=seed, **reading)
    if str(config["validation"]) == "test":
        val = test  # as the seed notebook does; the reported test figure is then not held out
    else:
        groups = None
        if config.get("group_validation"):
            groups = imdb_groups(train)
            if groups is None:
                print(
                    "validation: a random split (--group-validation groups IMDB reviews by movie; this data has no IMDB file names)",
                    flush=True,
                )
        train, val = train_val_split(train, val_fraction=float(config["validation"]), seed=seed, groups=groups)
    class_names = list(train.class_names)
    if len(class_names) < 2:
        raise LstmkitError(
            f"the training data has a single class ({class_names[0] if class_names else 'none'}); a classifier needs at least two"
        )
    print(
        f"data: {len(train.texts):,} train, {len(val.texts):,} validation{' (the test split)' if val is test else ''}, "
        f"{len(test.texts):,} test; classes {class_names} ({time.perf_counter() - t_start:.1f} s)",
        flush=True,
    )
    return train, val, test


def _round_data(r, config, model, train, val, unlabeled_texts, state, rounds_log):
    """(texts, labels, arrays to checkpoint) of self-training round r: train plus what `model`
    labels (or, resumed, the pseudo-labels the interrupted round saved)."""
    if state is not None and "pseudo.index" in state["arrays"]:
        index, pseudo = state["arrays"]["pseudo.index"], state["arrays"]["pseudo.label"]
        if len(index) != len(pseudo) or not np.all((index >= 0) & (index < len(unlabeled_texts))):
            raise LstmkitError(
                "the interrupted run's pseudo-labels do not fit these unlabeled texts; resume with the same "
                "--unlabeled, or start again with --overwrite"
            )
    else:
        confidence = float(config["pseudo_confidence"])
        soft = config.get("pseudo_labels", "hard") == "soft"  # absent from runs saved before it existed
        index, pseudo, stats = pseudo_labels(model, unlabeled_texts, confidence, soft=soft)
        kept, right = pseudo_label_accuracy(model, val.texts, val.labels, confidence)
        rounds_log.append({"round": r, **stats, "validation_kept": kept, "validation_kept_accuracy": right})
        rounds = int(config.get("self_training", 0))
        print(
            f"self-training round {r}/{rounds}: the model labels {stats['kept']:,} of {stats['unlabeled']:,} unlabeled texts "
            f"with confidence >= {config['pseudo_confidence']} {stats['per_class']}{' (soft: its probabilities are the targets)' if soft else ''}; "
            f"on validation it would keep {kept:.0%}, {right:.1%} of them right",
            flush=True,
        )
    if config.get("student"):
        differences = ", ".join(f"{k}={v}" for k, v in config["student"].items())
        print(f"the student differs from the first model in {differences}", flush=True)
    texts = list(train.texts) + [unlabeled_texts[i] for i in index]
    labels = with_pseudo_labels(train.labels, pseudo, len(train.class_names))
    return texts, labels, {"pseudo.index": np.asarray(index, np.int32), "pseudo.label": np.asarray(pseudo)}


def test_and_save(model, test, val, class_names, config, out, rounds_log, t_start):
    """Fit the temperature on validation (`lstmkit.tasks.calibration`), score the final model on the
    test split with it, write the finished model directory, say so. When validation is the test
    split (the seed preset's), no temperature is fitted (1): test would grade its own fit. Process 0's job."""
    if not parallel.is_writer():
        return None
    if model.architecture.multi_label:  # thresholds in place of a temperature
        return multilabel.test_and_save(model, test, val, class_names, config, out, t_start)
    held_out = val is not test
    config = {
        **config,
        "temperature": fit_temperature(model.predict(val.texts, calibrated=False), val.labels) if held_out else 1.0,
    }
    t0 = time.perf_counter()
    raw = model.predict(test.texts, calibrated=False)
    metrics = classification_report(test.labels, with_temperature(raw, config["temperature"]), class_names)
    metrics["predict_seconds"] = time.perf_counter() - t0
    metrics["calibration"] = calibration_report(raw, test.labels, config["temperature"])
    metrics["train_seconds"] = time.perf_counter() - t_start
    if rounds_log:
        metrics["self_training"] = rounds_log
    checkpoint.save_model(model, out, train_config=config, history=model.history, metrics=metrics, status="complete")
    print(
        f"test: accuracy {metrics['accuracy']:.4f}"
        + (f", ROC AUC {metrics['roc_auc']:.4f}" if "roc_auc" in metrics else "")
        + f", {'F1 of ' + metrics['positive_class'] if 'positive_class' in metrics else 'macro F1'} {metrics['f1']:.4f} on {metrics['n']:,} examples; total {metrics['train_seconds']:.0f} s",
        flush=True,
    )
    fitted = "temperature fitted on validation" if held_out else "no temperature: validation is the test split"
    print(f"calibration: {describe(metrics['calibration'])} on test ({fitted})", flush=True)
    print(f"model saved to {out}", flush=True)
    return metrics


def _resume_state(out, config, class_names, n_unlabeled):
    """What an interrupted run saved: its weights, optimizer state, history, best and arrays (a
    self-training round's pseudo-labels: at most one row per unlabeled text)."""
    saved_model = load_model(out)
    round_ = json.loads((out / "training_state.json").read_text()).get("round", 0)
    model = build_model(round_config(config, round_), len(class_names), 1)  # the optimizer state's shapes
    opt_state, training, history, best_params, arrays = checkpoint.load_training_state(
        out,
        model.optimizer.init(saved_model.params),
        saved_model.params,
        arrays_at_most={"pseudo.index": (n_unlabeled,), "pseudo.label": (n_unlabeled, len(class_names))},
    )
    print(
        f"resumed after epoch {training['epoch'] + 1}"
        + (f" of self-training round {training['round']}" if training.get("round") else ""),
        flush=True,
    )
    return {
        "model": saved_model,
        "opt_state": opt_state,
        "training": training,
        "history": history,
        "best_params": best_params,
        "arrays": arrays,
    }
