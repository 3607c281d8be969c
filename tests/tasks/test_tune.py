"""The search's rules, with a stand-in fit (no training): pruning between epochs, the time budget,
the best trial kept, and the trials table; `tests/cli/test_tune_cli.py` runs a real search."""

import csv

import pytest

from lstmkit import LstmkitError
from lstmkit.tasks.trials import trial_rows, write_trials
from lstmkit.tasks.tune import SPACE, Choice, Objective, Range, final_val_loss, new_study, searched, tune_run


class FakeModel:
    def __init__(self, history):
        self.history = history


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def fake_fit(losses_per_trial, clock=None, epoch_seconds=10.0):
    """A fit that reports the given validation losses, trial after trial, one per epoch."""
    queue = list(losses_per_trial)

    def fit(config, on_epoch_end):
        losses = queue.pop(0)
        assert len(losses) == config["epochs"]
        history = {"val_loss": []}
        for epoch, loss in enumerate(losses):
            if clock is not None:
                clock.now += epoch_seconds
            history["val_loss"].append(loss)
            on_epoch_end(epoch, None, None, history, None)
        return FakeModel(history)

    return fit


SMALL_SPACE = {"dropout": Range(0.0, 0.5, step=0.1)}


def test_a_trial_worse_than_the_median_is_pruned_between_epochs_but_never_after_its_last():
    losses = [
        [0.5, 0.4, 0.3],
        [0.5, 0.4, 0.3],
        [0.9, 0.8, 0.7],  # worse than the median (0.5) after epoch 1: pruned there
        [0.45, 0.35, 0.25],
        [0.4, 0.3, 0.95],  # bad only at its last epoch: it finishes, and counts as it is
    ]
    objective = Objective({"epochs": 3}, SMALL_SPACE, fake_fit(losses), deadline=float("inf"))
    study = new_study(0)
    study.optimize(objective, n_trials=len(losses))
    rows = trial_rows(study, list(SMALL_SPACE))
    assert [r["state"] for r in rows] == ["complete", "complete", "pruned", "complete", "complete"]
    assert rows[2]["epochs_run"] == 1 and rows[2]["val_loss"] == 0.9 and rows[2]["val_loss_per_epoch"] == "0.9"
    assert study.trials[2].user_attrs["stopped"] == "median"
    assert rows[4]["val_loss"] == 0.95 and rows[4]["val_loss_per_epoch"] == "0.4;0.3;0.95"
    value, config, model, number = objective.best
    assert (value, number) == (0.25, 3) and model.history["val_loss"] == [0.45, 0.35, 0.25]
    assert config["dropout"] == pytest.approx(study.trials[3].params["dropout"]) and study.best_trial.number == 3


def test_a_trial_whose_next_epoch_would_end_past_the_budget_is_stopped_and_the_search_ends():
    clock = FakeClock()
    losses = [[0.5, 0.4, 0.3], [0.6, 0.5, 0.4], [0.6, 0.5, 0.4]]
    fit = fake_fit(losses, clock, epoch_seconds=10.0)
    objective = Objective({"epochs": 3}, SMALL_SPACE, fit, deadline=35.0, clock=clock)
    study = new_study(0)
    study.optimize(objective, n_trials=3)
    rows = trial_rows(study, list(SMALL_SPACE))
    # trial 0 ends at 30 s; trial 1's first epoch ends at 40 s, its second would end at 50 s: stopped
    assert [r["state"] for r in rows] == ["complete", "stopped"]
    assert rows[1]["epochs_run"] == 1 and study.trials[1].user_attrs["stopped"] == "budget"
    assert clock.now == 40.0 <= 35.0 + 10.0  # within the budget plus one epoch
    assert objective.best[0] == 0.3


def test_the_last_epoch_of_a_trial_is_never_cut_by_the_budget():
    """Epoch 2 ends at 20 s, and a third would end past 25 s; but the trial has only two: it finishes."""
    clock = FakeClock()
    objective = Objective({"epochs": 2}, SMALL_SPACE, fake_fit([[0.5, 0.4]], clock), deadline=25.0, clock=clock)
    study = new_study(0)
    study.optimize(objective, n_trials=1)
    assert [r["state"] for r in trial_rows(study, ["dropout"])] == ["complete"]


def test_the_objective_is_the_loss_of_the_weights_the_fit_ends_with():
    assert final_val_loss({"val_loss": [0.5, 0.3, 0.4]}) == 0.4
    assert final_val_loss({"val_loss": [0.5, 0.3, 0.4], "best_epoch": 2}) == 0.3  # early stopping's best


def test_settings_given_as_flags_are_not_searched_and_the_space_holds_the_default_preset():
    from lstmkit.tasks.presets import DEFAULT

    assert set(searched(SPACE, ["epochs", "lstm_units"])) == set(SPACE) - {"epochs", "lstm_units"}
    assert all(spec.holds(DEFAULT[key]) for key, spec in SPACE.items())  # trial 0 is the default itself
    assert Choice((1, 2)).holds(2) and not Range(0.1, 0.5).holds(0.6)


def test_the_trials_table_has_one_row_per_trial_with_its_settings(tmp_path):
    objective = Objective({"epochs": 2}, SMALL_SPACE, fake_fit([[0.5, 0.4], [0.6, 0.3]]), deadline=float("inf"))
    study = new_study(1)
    study.optimize(objective, n_trials=2)
    rows = trial_rows(study, ["dropout"])
    csv_path, png_path = write_trials(tmp_path, rows, ["dropout"])
    with open(csv_path) as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == [
        "number",
        "state",
        "dropout",
        "val_loss",
        "val_loss_per_epoch",
        "epochs_run",
        "seconds",
    ]
    assert [(t["number"], t["state"], t["val_loss"]) for t in table] == [
        ("0", "complete", "0.4"),
        ("1", "complete", "0.3"),
    ]
    assert float(table[1]["dropout"]) == pytest.approx(study.trials[1].params["dropout"])
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "minutes, trials, settings, message",
    [
        (0, None, {}, "--minutes must be a positive number"),
        (-3, None, {}, "--minutes must be a positive number"),
        (float("nan"), None, {}, "--minutes must be a positive number"),
        (5, 0, {}, "--trials must be at least 1"),
        (5, None, {"validation": "test"}, "add --validation 0.1"),
        (5, None, {"self_training": 1}, "without self-training"),
    ],
)
def test_a_search_that_cannot_run_is_refused_before_anything_is_written(tmp_path, minutes, trials, settings, message):
    from lstmkit.tasks.presets import resolve

    config = {**resolve("default"), **settings}
    with pytest.raises(LstmkitError, match=message):
        tune_run(config, tmp_path / "absent.csv", tmp_path / "out", minutes=minutes, trials=trials)
    assert list(tmp_path.iterdir()) == []
