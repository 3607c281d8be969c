"""Hyperparameter search within a time budget (`lstmkit tune`): Optuna's TPE over a handful of a
preset's settings, poor trials pruned between epochs on validation loss, the best trial's model kept.

The data is read and split once, exactly as `lstmkit train` reads and splits it (the same
validation part, carved from train by the config's seed); every trial trains a fresh classifier on
train and reports its validation loss after each epoch. The objective is the validation loss of
the weights the trial ends with (the weight average, or early stopping's best epoch).

Time: the budget runs from the start of `tune_run`, data loading included. No trial starts after
it (`study.optimize(timeout=...)`), and a running trial is stopped at an epoch boundary when its
next epoch, at the pace of the last one, would end past it. So the search ends within the budget
plus one epoch; scoring the best model on the test split and writing it come after.

Optuna (the `tune` extra) is imported only when a search starts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from lstmkit.errors import LstmkitError
from lstmkit.io import output_folder
from lstmkit.tasks.classifier import with_class_weights
from lstmkit.tasks.fitting import train_one
from lstmkit.tasks.run import load_data, test_and_save
from lstmkit.tasks.trials import describe_params, trial_rows, write_trials


@dataclass(frozen=True)
class Range:
    """A number drawn between low and high (inclusive): on a log scale, on a grid of `step`, or an integer."""

    low: float
    high: float
    log: bool = False
    step: float | None = None
    integer: bool = False

    def draw(self, trial, key):
        if self.integer:
            return trial.suggest_int(key, int(self.low), int(self.high))
        value = trial.suggest_float(key, self.low, self.high, log=self.log, step=self.step)
        return value if self.step is None else round(value, 10)  # 0.30000000000000004 -> 0.3

    def holds(self, value):
        return isinstance(value, (int, float)) and self.low <= value <= self.high


@dataclass(frozen=True)
class Choice:
    """One of a few values."""

    values: tuple

    def draw(self, trial, key):
        return trial.suggest_categorical(key, list(self.values))

    def holds(self, value):
        return value in self.values


# What a trial may change, around the default preset (tasks/presets.py, docs/accuracy.md).
SPACE = {
    # 2e-3 is the default; a decade around it, log-uniform, as a learning rate's effect is multiplicative
    "learning_rate": Range(5e-4, 5e-3, log=True),
    # the default's validation loss rises from the third epoch on; a fourth would rarely pay for its time
    "epochs": Range(1, 3, integer=True),
    # 128 beat 64 with adversarial training; 256 is the next size up
    "embedding_dim": Choice((64, 128, 256)),
    # 64 per direction is the default; half and double (128 paid for the self-training student)
    "lstm_units": Choice((32, 64, 128)),
    # 0.3 is the default; none to half the units
    "dropout": Range(0.0, 0.5, step=0.1),
    # 0.4 is the default, 0.5 tied; 0.7 stalled learning, so the range stops below it
    "adversarial": Range(0.0, 0.6, step=0.1),
    # 20,000 and 30,000 fitted validation worse with the default; 5,000 is cheaper and may regularise
    "max_tokens": Choice((5000, 10000, 20000)),
    # 800 beat 400 on validation; shorter texts train faster, which buys more trials in a budget
    "sequence_length": Choice((200, 400, 800)),
    # word pairs lowered the validation loss (0.2534 against 0.2685 without); off, half, default, double
    "bigram_buckets": Choice((0, 50000, 100000, 200000)),
}

# The first trials are drawn at random, then TPE models the good and the bad; Optuna's default of 10
# random trials would leave TPE little to do in a budget that holds tens of trials.
RANDOM_TRIALS = 5
# A trial is pruned after an epoch (but its last) whose validation loss is worse than the median of
# the earlier trials' at that epoch, once this many trials have finished.
PRUNING_STARTS_AFTER = 2


class OutOfTime(Exception):
    """A trial stopped at an epoch boundary because its next epoch would end past the budget."""


def import_optuna():
    """Optuna, or one line naming the extra that installs it."""
    try:
        import optuna
    except ImportError as e:
        raise LstmkitError(f"lstmkit tune needs Optuna ({e}); install it with: pip install 'lstmkit[tune]'") from None
    return optuna


def new_study(seed):
    """An Optuna study that minimises validation loss: seeded TPE, median pruning between epochs."""
    optuna = import_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # lstmkit says one line per trial itself
    return optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=RANDOM_TRIALS),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=PRUNING_STARTS_AFTER, n_warmup_steps=0),
    )


def searched(space, fixed=()):
    """The part of `space` that is searched: the settings the user fixed (with flags) are left out."""
    return {key: spec for key, spec in space.items() if key not in set(fixed)}


def final_val_loss(history):
    """The validation loss of the weights a fit ends with: early stopping's best epoch, else the last."""
    losses = history["val_loss"]
    return float(losses[history["best_epoch"] - 1] if "best_epoch" in history else losses[-1])


class EpochReporter:
    """The `on_epoch_end` of a trial's fit: reports the epoch's validation loss to Optuna, prunes a
    poor trial, and stops one whose next epoch would end past `deadline` (by `clock`)."""

    def __init__(self, trial, epochs, deadline, clock=time.monotonic):
        self.trial, self.epochs, self.deadline, self.clock = trial, epochs, deadline, clock
        self.epoch_started = clock()

    def __call__(self, epoch, model, opt_state, history, best):
        import optuna

        now = self.clock()
        epoch_seconds, self.epoch_started = now - self.epoch_started, now
        self.trial.report(float(history["val_loss"][-1]), epoch)
        if epoch + 1 >= self.epochs:
            return  # the trial is done: its result counts as it is
        if self.trial.should_prune():
            self.trial.set_user_attr("stopped", "median")
            raise optuna.TrialPruned(f"validation loss above the median at epoch {epoch + 1}")
        if now + epoch_seconds > self.deadline:
            raise OutOfTime(f"epoch {epoch + 2} would end after the budget")


class Objective:
    """What Optuna minimises: a trial's config drawn from `space` over `base`, fitted by
    `fit(config, on_epoch_end) -> model`, scored by its final validation loss. Keeps the best
    finished trial's (value, config, model, trial number) as `best`."""

    def __init__(self, base, space, fit, deadline, clock=time.monotonic):
        self.base, self.space, self.fit, self.deadline, self.clock = base, space, fit, deadline, clock
        self.best = None

    def __call__(self, trial):
        import optuna

        config = {**self.base, **{key: spec.draw(trial, key) for key, spec in self.space.items()}}
        started = self.clock()
        try:
            model = self.fit(config, EpochReporter(trial, int(config["epochs"]), self.deadline, self.clock))
        except OutOfTime as e:
            trial.set_user_attr("stopped", "budget")
            trial.study.stop()
            raise optuna.TrialPruned(str(e)) from None
        finally:
            trial.set_user_attr("seconds", self.clock() - started)
        value = final_val_loss(model.history)
        if self.best is None or value < self.best[0]:
            self.best = (value, config, model, trial.number)
        return value


def tune_run(
    config,
    data,
    out,
    *,
    minutes,
    trials=None,
    fixed=(),
    space=SPACE,
    overwrite=False,
    verbose=True,
    progress=True,
    **reading,
):
    """Search `space` (less the `fixed` settings) around `config` for `minutes`, write the best
    trial's model to `out` as `lstmkit train` would (scored once on the test split), with
    out/trials.csv and out/trials.png; returns (test metrics, rows of the trials table).

    trials: at most this many (None: as many as the budget holds). reading: test_data,
    text_column, label_column, file_format, header, multi_label, as `lstmkit.tasks.run.train_run` takes them.
    The first trial is the preset itself (its values of the searched settings that lie in the space).
    """
    t_start = time.perf_counter()
    _check(config, minutes, trials)
    optuna = import_optuna()
    out = Path(out)
    with output_folder.claim_output(out, overwrite=overwrite) as said:
        if said:
            print(said, flush=True)
        if int(config.get("members", 1)) > 1:
            print(
                f"tune: each trial trains one model, not the preset's {config['members']} members; "
                f"train the best settings with --members {config['members']} for the ensemble",
                flush=True,
            )
            config = {**config, "members": 1}
        reading = {
            "text_column": None,
            "label_column": None,
            "file_format": None,
            "header": None,
            "multi_label": None,
            **reading,
        }
        test_data = reading.pop("test_data", None)
        train, val, test = load_data(config, data, test_data, reading, t_start)
        class_names = list(train.class_names)
        config = with_class_weights(config, train.labels, class_names)
        space = searched(space, fixed)
        print(f"tune: {minutes:g} minutes over {', '.join(space) or 'nothing (every setting is fixed)'}", flush=True)

        def fit(trial_config, on_epoch_end):
            return _fit_trial(trial_config, train, val, class_names, on_epoch_end, verbose, progress)

        deadline = time.monotonic() + minutes * 60 - (time.perf_counter() - t_start)
        objective = Objective(config, space, fit, deadline)
        study = new_study(int(config["seed"]))
        study.enqueue_trial({key: config[key] for key, spec in space.items() if spec.holds(config[key])})
        study.optimize(
            objective,
            n_trials=trials if space else 1,  # every setting fixed: one trial says all there is
            timeout=max(deadline - time.monotonic(), 0.0),
            callbacks=[lambda study, trial: print(_trial_line(study, trial, optuna), flush=True)],
        )
        rows = trial_rows(study, list(space))
        if objective.best is None:
            raise LstmkitError(
                f"no trial finished within {minutes:g} minutes ({len(rows)} stopped); give tune more --minutes, "
                "or fix the slow settings with their flags (e.g. --epochs 1 --sequence-length 200)"
            )
        value, best_config, model, number = objective.best
        print(_best_line(number, value, best_config, space, rows, minutes, t_start), flush=True)
        metrics = test_and_save(model, test, val, class_names, best_config, out, [], t_start)
        write_trials(out, rows, list(space))
        print(f"trials: {out / 'trials.csv'}, {out / 'trials.png'}", flush=True)
        return metrics, rows


def _check(config, minutes, trials):
    """Refuse a search that cannot run, before anything is read or written."""
    if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
        raise LstmkitError(f"--minutes must be a positive number of minutes (e.g. --minutes 30), got {minutes}")
    if trials is not None and trials < 1:
        raise LstmkitError(f"--trials must be at least 1 (or left out: as many as the budget holds), got {trials}")
    if str(config["validation"]) == "test":
        raise LstmkitError(
            "tune chooses on validation carved from train, but this preset validates on the test split; "
            "add --validation 0.1"
        )
    if int(config.get("self_training", 0)):
        raise LstmkitError(
            "tune searches the classifier without self-training; use --preset default, or add --self-training 0"
        )


def _fit_trial(config, train, val, class_names, on_epoch_end, verbose, progress):
    """A fresh classifier per config, fitted as `lstmkit train` fits one, `on_epoch_end` instead of checkpoints."""
    seed, epochs = int(config["seed"]), int(config["epochs"])
    return train_one(
        config, train.texts, train.labels, val, class_names, None,
        seed=seed, epochs=epochs, verbose=verbose, progress=progress, on_epoch_end=on_epoch_end,
    )  # fmt: skip


def _trial_line(study, trial, optuna):
    """One line per trial: its state, validation loss, time and settings."""
    seconds = trial.user_attrs.get("seconds", 0.0)
    losses = list(trial.intermediate_values.values())
    if trial.state == optuna.trial.TrialState.COMPLETE:
        best = " (best so far)" if trial.number == study.best_trial.number else ""
        what = f"val_loss {trial.value:.4f}{best}"
    elif trial.state == optuna.trial.TrialState.PRUNED:
        why = "the budget" if trial.user_attrs.get("stopped") == "budget" else "the median rule"
        what = f"stopped by {why} after {len(losses)} epoch(s)" + (f", val_loss {losses[-1]:.4f}" if losses else "")
    else:
        what = trial.state.name.lower()
    return f"trial {trial.number}: {what}, {seconds:.0f} s; {describe_params(trial.params)}"


def _best_line(number, value, config, space, rows, minutes, t_start):
    counts = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    tally = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    return (
        f"best: trial {number}, val_loss {value:.4f}; "
        f"{describe_params({k: config[k] for k in space})} ({len(rows)} trials: {tally}; "
        f"{(time.perf_counter() - t_start) / 60:.1f} of {minutes:g} minutes)"
    )
