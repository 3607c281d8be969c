"""The command line end to end on a small CSV dataset: train, evaluate, predict, plot, resume, errors."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from helpers import TINY, synthetic_reviews
from lstmkit.cli import main
from lstmkit.errors import LstmkitError
from lstmkit.io import checkpoint
from lstmkit.nn.model import load_model
from lstmkit.tasks import run


@pytest.fixture(scope="module")
def csv_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    texts, labels = synthetic_reviews(1200, seed=10)
    path = root / "reviews.csv"
    with open(path, "w") as f:
        f.write("review,sentiment\n")
        for t, y in zip(texts, labels):
            f.write(f'"{t}",{"positive" if y else "negative"}\n')
    return path


@pytest.fixture(scope="module")
def trained(csv_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "model"
    result = CliRunner().invoke(main, ["train", "--data", str(csv_data), "--out", str(out), "--epochs", "4", *TINY])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_train_writes_a_complete_model_directory(trained):
    out, output = trained
    assert "holding out a stratified 20% as test" in output
    assert "config: " in output and '"preset": "default"' in output
    for name in ("config.json", "weights.safetensors", "history.json", "metrics.json"):
        assert (out / name).exists(), name
    config = json.loads((out / "config.json").read_text())
    assert config["status"] == "complete" and config["train_config"]["epochs"] == 4
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.85, metrics  # it learned: chance is 0.5
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == 4 and len(history["val_accuracy"]) == 4


def test_evaluate_json_and_table(trained, csv_data):
    out, _ = trained
    r = CliRunner().invoke(main, ["evaluate", str(out), "--data", str(csv_data), "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "confusion_matrix"):
        assert key in m
    assert m["class_names"] == ["negative", "positive"] and np.sum(m["confusion_matrix"]) == 1200
    assert m["schema_version"] == 1
    assert m["positive_class"] == "positive" and m["f1"] == m["per_class"]["positive"]["f1"]
    r = CliRunner().invoke(main, ["evaluate", str(out), "--data", str(csv_data)])
    assert "confusion matrix" in r.output and "positive class: positive" in r.output
    assert all(f"\n{row}" in r.output for row in ("negative", "macro avg", "weighted avg"))


def test_evaluate_maps_a_subset_of_the_classes_and_names_an_unknown_one(trained, csv_data, tmp_path):
    """A file with only some classes has its labels mapped through the model's: it was refused by
    evaluate, and with train --test-data its labels were shifted (a perfect model scored 0%)."""
    out, _ = trained
    rows = csv_data.read_text().splitlines()
    only_positive = tmp_path / "positive.csv"
    only_positive.write_text("\n".join([rows[0]] + [r for r in rows[1:] if r.endswith(",positive")]) + "\n")
    r = CliRunner().invoke(main, ["evaluate", str(out), "--data", str(only_positive), "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    assert m["per_class"]["negative"]["support"] == 0 and m["per_class"]["positive"]["support"] == m["n"] > 0
    assert m["accuracy"] == m["per_class"]["positive"]["recall"] > 0.5
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("review,sentiment\nfine film,positive\nmeh,mixed\n")
    r = CliRunner().invoke(main, ["evaluate", str(out), "--data", str(unknown)])
    assert r.exit_code == 2 and "has class 'mixed', which the model does not know" in r.output


def test_predict_arguments_file_stdin(trained, tmp_path):
    out, _ = trained
    r = CliRunner().invoke(
        main, ["predict", str(out), "--json", "a great and lovely film", "", "dull awful boring plot"]
    )
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(row["line"], row["label"]) for row in rows] == [(1, "positive"), (3, "negative")]
    assert all(row["schema_version"] == 1 for row in rows)
    assert all(0.5 <= row["probability"] <= 1.0 for row in rows)
    assert "skipped 1 blank line(s): 2" in r.stderr
    texts = tmp_path / "texts.txt"
    texts.write_text("superb fine movie\nboring poor\n")
    r = CliRunner().invoke(main, ["predict", str(out), "--file", str(texts)])
    assert r.exit_code == 0 and [line.split("\t")[0] for line in r.stdout.splitlines()] == ["1", "2"]
    r = CliRunner().invoke(main, ["predict", str(out), "--json"], input="great\nawful\n")
    assert [json.loads(line)["label"] for line in r.stdout.splitlines()] == ["positive", "negative"]


def test_predict_rows_match_input_lines(trained, tmp_path):
    """Lines end at \\n only: U+2028, U+0085 and form feeds stay inside a text (splitlines broke
    there: 800 reviews gave 834 predictions); blank lines are skipped and reported, not scored."""
    out, _ = trained
    lines = ["great\u2028lovely film", "awful\x85dull", "", "superb\x0cfine", "   ", "poor plot\r"]
    path = tmp_path / "reviews.txt"
    path.write_bytes("\n".join(lines).encode("utf-8"))
    r = CliRunner().invoke(main, ["predict", str(out), "--file", str(path), "--json"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["line"] for row in rows] == [1, 2, 4, 6]
    assert [row["text"] for row in rows] == [lines[0], lines[1], lines[3], "poor plot"]
    assert "skipped 2 blank line(s): 3, 5" in r.stderr
    r = CliRunner().invoke(main, ["predict", str(out), "--file", str(path), "--keep-blank"])
    assert len(r.stdout.splitlines()) == 6


def test_predict_reads_a_tables_text_column_and_names_rows(trained, tmp_path):
    out, _ = trained
    table = tmp_path / "new.csv"
    table.write_text("id,review\na7,a great lovely film\nb9,dull awful plot\n")
    r = CliRunner().invoke(main, ["predict", str(out), "--file", str(table), "--id-column", "id", "--json", "--all"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(row["id"], row["label"]) for row in rows] == [("a7", "positive"), ("b9", "negative")]
    for row in rows:  # every class's probability, likeliest first, summing to 1
        assert row["top_k"][0]["label"] == row["label"] and len(row["top_k"]) == 2
        assert abs(sum(t["probability"] for t in row["top_k"]) - 1.0) < 1e-6
    r = CliRunner().invoke(main, ["predict", str(out), "--file", str(table)])
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == ["1", "2"]  # the header is not a text
    r = CliRunner().invoke(main, ["predict", str(out)], input="\n  \n")
    assert r.exit_code == 2 and "no non-blank line" in r.output and "Traceback" not in r.output


def test_predict_threshold_moves_the_binary_decision(trained):
    """--threshold P: 'positive' (the second class) exactly when its probability, as --all prints
    it at the default threshold, is at least P; the probabilities themselves do not change."""
    out, _ = trained
    texts = ["a great and lovely film", "fine but dull", "the movie", "good but poor", "dull awful boring", "plot"]

    def rows(*flags):
        r = CliRunner().invoke(main, ["predict", str(out), "--json", "--all", *flags, *texts])
        assert r.exit_code == 0, r.output
        return [json.loads(line) for line in r.stdout.splitlines()]

    default = rows()
    p = [next(t["probability"] for t in row["top_k"] if t["label"] == "positive") for row in default]
    assert [row["label"] for row in default] == ["positive" if q >= 0.5 else "negative" for q in p]
    # the least sure positive and the least sure negative; mixed reviews keep them off 0 and 1
    weakest_positive, weakest_negative = min(q for q in p if q >= 0.5), max(q for q in p if q < 0.5)
    assert weakest_positive < 1.0 and weakest_negative > 0.0, p
    for threshold in ((weakest_positive + 1.0) / 2, weakest_negative / 2):  # each flips at least that one
        moved = rows("--threshold", str(threshold))
        assert [row["label"] for row in moved] == ["positive" if q >= threshold else "negative" for q in p]
        assert [row["label"] for row in moved] != [row["label"] for row in default]
        assert [row["top_k"] for row in moved] == [row["top_k"] for row in default]


def test_plot_writes_png(trained, tmp_path):
    out, _ = trained
    png = tmp_path / "curves.png"
    r = CliRunner().invoke(main, ["plot", str(out), "--out", str(png)])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "curves.svg"  # the format follows the suffix (it was a PNG under any name)
    assert CliRunner().invoke(main, ["plot", str(out), "--out", str(svg)]).exit_code == 0
    assert b"<svg" in svg.read_bytes()[:400]
    r = CliRunner().invoke(main, ["plot", str(out), "--out", str(tmp_path / "curves.gif")])
    assert r.exit_code == 2 and "end it in .png, .svg or .pdf" in r.output
    r = CliRunner().invoke(main, ["plot", str(out), "--out", str(tmp_path)])
    assert r.exit_code == 2 and "it is a folder" in r.output and "Traceback" not in r.output


def test_plot_draws_a_pretrained_lms_history(tmp_path):
    """A history without accuracy (a pretrained LM's) was a KeyError: 'accuracy' traceback."""
    folder = tmp_path / "lm"
    folder.mkdir()
    (folder / "history.json").write_text(
        json.dumps({"loss": [5.1, 4.2], "val_loss": [5.0, 4.4], "val_perplexity": [150.0, 81.5]})
    )
    r = CliRunner().invoke(main, ["plot", str(folder)])
    assert r.exit_code == 0, r.output
    assert (folder / "curves.png").read_bytes()[:4] == b"\x89PNG"
    (folder / "history.json").write_text("[1, 2]")
    r = CliRunner().invoke(main, ["plot", str(folder)])
    assert r.exit_code == 2 and "is not a training history" in r.output


@pytest.fixture(scope="module")
def unlabeled_txt(tmp_path_factory):
    path = tmp_path_factory.mktemp("unlabeled") / "more.txt"
    path.write_text("\n".join(synthetic_reviews(600, seed=11)[0]) + "\n")
    return path


# The default suite resumes a plain run and self-training's two cases; early stopping, the weight
# average, the wider student and soft labels resume in the slow suite (CI's 10-minute budget).
SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "extra, interrupt_at",
    [
        ((), 1),
        pytest.param(("--epochs", "3", "--early-stopping", "2"), 1, marks=SLOW),
        pytest.param(("--weight-average", "0.9"), 1, marks=SLOW),
        (("--table-updates", "rows", "--weight-average", "0.9"), 1),  # lazy Adam's state, its rows' averages
        (("--self-training", "1", "--unlabeled", "UNLABELED"), 3),
        (("--self-training", "2", "--self-training-epochs", "1", "--unlabeled", "UNLABELED"), 3),
        pytest.param(
            (
                "--self-training",
                "1",
                "--student",
                "lstm_units=6",
                "--student",
                "weight_average=0.9",
                "--unlabeled",
                "UNLABELED",
            ),
            3,
            marks=SLOW,
        ),
        pytest.param(
            (
                "--self-training",
                "1",
                "--pseudo-labels",
                "soft",
                "--pseudo-confidence",
                "0.5",
                "--unlabeled",
                "UNLABELED",
            ),
            3,
            marks=SLOW,
        ),
        (("--members", "2"), 3),  # in the second member's training, the first's weights in the checkpoint
        pytest.param(  # interrupted after the last round's first member: the second continues from the checkpoint
            ("--self-training", "1", "--self-training-epochs", "1", "--final-members", "2", "--unlabeled", "UNLABELED"),
            3,
            marks=SLOW,
        ),
    ],
    ids=[
        "plain",
        "early-stopping",
        "weight-average",
        "lazy-adam",
        "self-training-round-1",
        "self-training-between-rounds",
        "wider-student",
        "soft-labels",
        "ensemble",
        "final-members",
    ],
)
def test_interrupted_run_resumes_to_the_same_result(
    csv_data, unlabeled_txt, tmp_path, monkeypatch, extra, interrupt_at
):
    """Ctrl-C after a checkpoint; --resume finishes with the uninterrupted run's numbers (with early
    stopping's best weights, the weight average and self-training's pseudo-labels restored too)."""
    extra = [str(unlabeled_txt) if e == "UNLABELED" else e for e in extra]
    args = ["train", "--data", str(csv_data), "--epochs", "2", "--seed", "3", *TINY, *extra]
    straight = tmp_path / "straight"
    assert CliRunner().invoke(main, [*args, "--out", str(straight)]).exit_code == 0

    real_save = checkpoint.save_model
    saves = []

    def save_then_interrupt(*a, **kw):
        real_save(*a, **kw)
        if kw.get("status") == "training":
            saves.append(1)
            if len(saves) == interrupt_at:
                raise KeyboardInterrupt

    out = tmp_path / "interrupted"
    monkeypatch.setattr(checkpoint, "save_model", save_then_interrupt)
    r = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert r.exit_code == 130 and "--resume" in r.output
    assert json.loads((out / "config.json").read_text())["status"] == "training"
    monkeypatch.setattr(checkpoint, "save_model", real_save)

    r = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert r.exit_code == 2 and "--resume" in r.output  # refuses to overwrite an interrupted run
    r = CliRunner().invoke(main, [*args, "--out", str(out), "--resume"])
    assert r.exit_code == 0, r.output
    a = json.loads((straight / "history.json").read_text())
    b = json.loads((out / "history.json").read_text())
    np.testing.assert_allclose(a["val_loss"], b["val_loss"], rtol=1e-5)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (straight, out))
    assert ma["accuracy"] == mb["accuracy"]
    assert ma.get("self_training") == mb.get("self_training")
    ensemble = "--members" in extra or "--final-members" in extra
    assert ("ensemble_val" in a) == ensemble and a.get("ensemble_val") == b.get("ensemble_val")
    assert [h["val_loss"] for h in a.get("other_members", [])] == [h["val_loss"] for h in b.get("other_members", [])]


def test_ctrl_c_during_the_final_test_pass_exits_130_and_resume_finishes(csv_data, tmp_path, monkeypatch):
    """The last epoch's checkpoint is on disk when the test pass starts: Ctrl-C there is exit 130
    (not swallowed, not exit 0), the folder stays an interrupted run, and --resume trains no more
    epochs, scores test and completes it."""
    out = tmp_path / "m"
    args = ["train", "--data", str(csv_data), "--out", str(out), "--epochs", "2", "--seed", "3", *TINY]

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "classification_report", interrupted)
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 130 and "continue with --resume" in r.output
    assert json.loads((out / "config.json").read_text())["status"] == "training"
    monkeypatch.undo()
    r = CliRunner().invoke(main, [*args, "--resume"])
    assert r.exit_code == 0, r.output
    assert "resumed after epoch 2" in r.output and "epoch 1/" not in r.output.split("resumed")[1]
    assert json.loads((out / "config.json").read_text())["status"] == "complete"
    # learned (chance is 0.5; two epochs of this tiny model score 0.62 to 0.97 across seeds 0-5)
    assert json.loads((out / "metrics.json").read_text())["accuracy"] > 0.7


@pytest.mark.slow  # 39 s in CI; soft self-training and a resume between rounds run by default
def test_self_training_labels_unlabeled_text_and_trains_on_it(csv_data, unlabeled_txt, tmp_path):
    out = tmp_path / "st"
    # Without adversarial training: the tiny teacher then learns fast enough to be confident about
    # most unlabeled texts in 3 epochs, which the thresholds below rely on.
    r = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            str(csv_data),
            "--out",
            str(out),
            "--epochs",
            "3",
            *TINY,
            "--adversarial",
            "0",
            "--self-training",
            "2",
            "--unlabeled",
            str(unlabeled_txt),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "self-training round 1/2" in r.output and "self-training round 2/2" in r.output
    metrics = json.loads((out / "metrics.json").read_text())
    rounds = metrics["self_training"]
    assert [x["round"] for x in rounds] == [1, 2]
    for x in rounds:
        assert x["unlabeled"] == 600 and 300 < x["kept"] <= 600 and sum(x["per_class"].values()) == x["kept"]
        assert x["validation_kept_accuracy"] > 0.9  # the confident labels are mostly right
    assert metrics["accuracy"] > 0.85
    config = json.loads((out / "config.json").read_text())["train_config"]
    assert config["unlabeled"] == [str(unlabeled_txt)] and config["self_training"] == 2


def test_soft_self_training_learns_from_the_teachers_probabilities(csv_data, unlabeled_txt, tmp_path):
    """--pseudo-labels soft: the kept texts' targets are the teacher's probabilities (0.5 keeps all)."""
    out = tmp_path / "soft"
    r = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            str(csv_data),
            "--out",
            str(out),
            "--epochs",
            "3",
            *TINY,
            "--adversarial",
            "0",
            "--self-training",
            "1",
            "--self-training-epochs",
            "1",
            "--pseudo-labels",
            "soft",
            "--pseudo-confidence",
            "0.5",
            "--unlabeled",
            str(unlabeled_txt),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "(soft: its probabilities are the targets)" in r.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["self_training"][0]["kept"] == 600 and metrics["accuracy"] > 0.85
    assert json.loads((out / "config.json").read_text())["train_config"]["pseudo_labels"] == "soft"


@pytest.mark.slow  # CI's 10-minute budget; the slow suite runs it
def test_student_settings_shape_the_students_only(csv_data, unlabeled_txt, tmp_path):
    """--student KEY=VALUE: the self-trained model has the student's size; the first model keeps the run's."""
    out, first = tmp_path / "st", tmp_path / "first"
    common = ["train", "--data", str(csv_data), "--epochs", "2", *TINY, "--adversarial", "0"]
    r = CliRunner().invoke(
        main,
        [
            *common,
            "--out",
            str(out),
            "--self-training",
            "1",
            "--self-training-epochs",
            "1",
            "--student",
            "lstm_units=12",
            "--student",
            "embedding_dim=5",
            "--student",
            "members=1",
            "--members",
            "2",
            "--unlabeled",
            str(unlabeled_txt),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "the student differs from the first model in lstm_units=12, embedding_dim=5, members=1" in r.output
    assert "the ensemble of 2" in r.output and len(load_model(out).members) == 1  # two teachers, one student
    assert CliRunner().invoke(main, [*common, "--out", str(first)]).exit_code == 0

    def sizes(model_dir):
        model = load_model(model_dir)
        return model.params[2]["forward"]["W_h"].shape, model.params[0]["table"].shape[1]

    assert sizes(out) == ((12, 48), 5) and sizes(first) == ((8, 32), 8)
    config = json.loads((out / "config.json").read_text())["train_config"]
    assert config["student"] == {"lstm_units": 12, "embedding_dim": 5, "members": 1} and config["lstm_units"] == 8
    r = CliRunner().invoke(main, [*common, "--out", str(tmp_path / "x"), "--preset", "best", "--self-training", "0"])
    assert r.exit_code == 0, r.output  # the best preset's student settings wait unused without self-training


def test_student_pairs_parse_to_typed_settings():
    from lstmkit.tasks.presets import parse_student, resolve

    assert parse_student(["lstm_units=128", "dropout=0.4", "pooling=max"]) == {
        "lstm_units": 128,
        "dropout": 0.4,
        "pooling": "max",
    }
    assert parse_student(["lstm_units=128", "none", "max-tokens=20000"]) == {
        "max_tokens": 20000
    }  # 'none' clears what came before
    assert resolve("best")["student"] == {"lstm_units": 128}
    assert resolve("best", student={"max_tokens": 20000})["student"] == {"max_tokens": 20000}  # replaces, not merges
    assert resolve("best", student={})["student"] == {}
    with pytest.raises(LstmkitError, match="--student: --members must be 1"):
        resolve("best", student={"members": 0})


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--preset", "nope"], "unknown preset"),
        (["train", "--pooling", "median"], "Invalid value for '--pooling'"),
        (["train", "--validation", "1.5"], "--validation must be"),
        (["train", "--data", "/no/such/file.csv"], "does not exist"),
        (["evaluate", "/no/such/model", "--data", "x.csv"], "does not exist"),
        (["predict", "/no/such/model", "hello"], "does not exist"),
        (["plot", "/no/such/model"], "no history.json"),
        (["train", "--self-training", "1"], "needs unlabeled text"),
        (["train", "--unlabeled", "x.txt"], "only for self-training"),
        (["train", "--pseudo-confidence", "0.3"], "--pseudo-confidence must be"),
        (["train", "--adversarial", "-1"], "--adversarial must be"),
        (["train", "--adversarial", "nan"], "--adversarial must be"),
        (["train", "--virtual-adversarial", "-0.5"], "--virtual-adversarial must be"),
        (["train", "--bigram-buckets", "-5"], "--bigram-buckets must be"),
        (["train", "--bigram-dropout", "1"], "--bigram-dropout must be in [0, 1)"),
        (["train", "--self-training", "1", "--student", "seed=3"], "--student takes KEY=VALUE with KEY one of"),
        (["train", "--self-training", "1", "--student", "lstm_units"], "--student takes KEY=VALUE"),
        (["train", "--self-training", "1", "--student", "lstm_units=wide"], "--student lstm_units needs an integer"),
        (["train", "--self-training", "1", "--student", "lstm_units=0"], "--student: --lstm-units must be at least 1"),
        (["train", "--self-training", "1", "--student", "pooling=median"], "--student: --pooling must be one of"),
        (["train", "--student", "lstm_units=128"], "--student sets the self-training students"),
        (["train", "--pseudo-labels", "fuzzy"], "Invalid value for '--pseudo-labels'"),
        (["train", "--learning-rate", "-1"], "--learning-rate must be 0 or more"),
        (["train", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["train", "--members", "0"], "--members must be 1 (one model) to 64"),
        (["train", "--final-members", "2"], "--final-members sets the last self-training student"),
        (["train", "--preset", "best", "--final-members", "65"], "--final-members must be 0"),
        (["train", "--table-updates", "rows", "--optimizer", "sgd"], "--table-updates rows needs --optimizer adam"),
        (["train", "--table-updates", "sparse"], "Invalid value for '--table-updates'"),
        (["predict", "/no/such/model", "x", "--batch-size", "0"], "Invalid value for '--batch-size'"),
    ],
)
def test_user_mistakes_get_one_line_and_exit_2(args, message):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output


def test_adversarial_training_from_the_command_line(csv_data, tmp_path):
    r = CliRunner().invoke(
        main, ["train", "--data", str(csv_data), "--out", str(tmp_path / "m"), "--adversarial", "0.5", *TINY]
    )
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "m" / "config.json").read_text())["train_config"]["adversarial"] == 0.5


@pytest.mark.slow  # CI's 10-minute budget; the slow suite runs it
def test_bigrams_and_virtual_adversarial_training_from_the_command_line(csv_data, tmp_path):
    """Both reach the saved model: its Embedding has a bigram table, and predict reads it back."""
    out = tmp_path / "m"
    flags = ["--bigram-buckets", "64", "--bigram-dropout", "0.2", "--virtual-adversarial", "0.3"]
    r = CliRunner().invoke(main, ["train", "--data", str(csv_data), "--out", str(out), *TINY, *flags])
    assert r.exit_code == 0, r.output
    config = json.loads((out / "config.json").read_text())
    assert config["train_config"]["virtual_adversarial"] == 0.3
    embedding = next(layer for layer in config["model"]["layers"] if layer["type"] == "Embedding")
    assert embedding["bigram_buckets"] == 64 and embedding["bigram_dropout"] == 0.2
    r = CliRunner().invoke(main, ["predict", str(out), "a good film", "--json"])
    assert r.exit_code == 0, r.output


def test_group_validation_falls_back_to_a_random_split_without_imdb_names(csv_data, tmp_path):
    r = CliRunner().invoke(
        main, ["train", "--data", str(csv_data), "--out", str(tmp_path / "m"), "--group-validation", *TINY]
    )
    assert r.exit_code == 0, r.output
    assert "validation: a random split" in r.output
