"""`lstmkit tune` end to end on synthetic reviews the test writes: a few tiny trials, the best
model loadable, trials.csv and trials.png; and the missing extra as one line."""

import csv
import json
import sys

import pytest
from click.testing import CliRunner

from helpers import TINY, synthetic_reviews
from lstmkit.cli import main


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A search of three tiny trials: the epochs searched, everything else fixed by flags (with a
    constant learning rate, the epochs do not change the compiled steps: one compile for all)."""
    root = tmp_path_factory.mktemp("tune")
    texts, labels = synthetic_reviews(160, seed=3)
    rows = [f"{t},{'positive' if y else 'negative'}" for t, y in zip(texts, labels)]
    (root / "reviews.csv").write_text("review,sentiment\n" + "\n".join(rows) + "\n")
    args = ["tune", "--data", str(root / "reviews.csv"), "--out", str(root / "m"), "--minutes", "10", "--trials", "3"]
    result = CliRunner().invoke(
        main, [*args, *TINY, "--adversarial", "0", "--dropout", "0.2", "--schedule", "constant", "--members", "2"]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    return root / "m", result.stdout


def test_tune_writes_the_best_trial_as_a_model_directory(tuned):
    from lstmkit.nn.model import load_model

    out, stdout = tuned
    model = load_model(out)
    assert model.predict(["a great superb film", "awful boring plot"]).labels[0] in ("positive", "negative")
    saved = json.loads((out / "config.json").read_text())["train_config"]
    with open(out / "trials.csv") as f:
        table = list(csv.DictReader(f))
    complete = [t for t in table if t["state"] == "complete"]
    best = min(complete, key=lambda t: float(t["val_loss"]))
    assert saved["epochs"] == int(best["epochs"])
    assert (saved["lstm_units"], saved["learning_rate"], saved["dropout"]) == (8, 0.01, 0.2)  # fixed by flags
    assert json.loads((out / "metrics.json").read_text())["n"] == 32  # scored once on the held-out 20%
    assert f"best: trial {best['number']}, val_loss" in stdout and "test: accuracy" in stdout
    # trials are single models, whatever --members says: the saved model and config agree
    assert saved["members"] == 1 and len(model.members) == 1 and "each trial trains one model" in stdout


def test_tune_writes_one_row_per_trial_and_a_picture(tuned):
    out, stdout = tuned
    with open(out / "trials.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["number", "state", "epochs", "val_loss", "val_loss_per_epoch", "epochs_run", "seconds"]  # fmt: skip
    assert [t["number"] for t in table] == ["0", "1", "2"]
    assert all(t["state"] in ("complete", "pruned") for t in table) and table[0]["state"] == "complete"
    assert table[0]["epochs"] == "2"  # trial 0 is the default preset itself
    for t in table:
        losses = t["val_loss_per_epoch"].split(";")
        assert len(losses) == int(t["epochs_run"]) <= int(t["epochs"]) and float(t["seconds"]) >= 0
    assert float(table[0]["seconds"]) > 0  # the first compiles; the others reuse its steps
    assert (out / "trials.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [line.split(":")[0] for line in stdout.splitlines() if line.startswith("trial ")] == [
        "trial 0",
        "trial 1",
        "trial 2",
    ]


def test_without_optuna_tune_names_the_extra_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` now raises ImportError
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["tune", "--data", "x.csv", "--minutes", "1", "--out", "m"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'lstmkit[tune]'" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_the_readme_tune_lines_run_as_written_with_tiny_sizes(tmp_path, monkeypatch):
    """The README's Tune block, each line with the fixture's tiny flags appended (the same compiled
    steps, so this costs no compile), and --trials 2."""
    from test_readme_commands import readme_command_lines

    lines = readme_command_lines("Tune")
    assert len(lines) == 2 and all(line[0] == "tune" for line in lines)
    texts, labels = synthetic_reviews(160, seed=3)
    rows = [f"{t},{'positive' if y else 'negative'}" for t, y in zip(texts, labels)]
    (tmp_path / "reviews.csv").write_text("review,sentiment\n" + "\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)
    small = [*TINY, "--adversarial", "0", "--dropout", "0.2", "--schedule", "constant", "--trials", "2"]
    for line in lines:
        result = CliRunner().invoke(main, [*line, *small])
        assert result.exit_code == 0, (line, result.output, result.exception)
        out = tmp_path / line[line.index("--out") + 1]
        assert (out / "config.json").is_file() and (out / "trials.csv").is_file()
