"""The command line on files as people have them: a headerless TSV with no extension (the SMS spam
collection's layout), fastText lines, a spreadsheet's BOM + semicolon + CRLF export, gzip; and on
the model that trains on them, class weights and evaluate's PR AUC and confusion matrix picture."""

import gzip
import json

import numpy as np
import pytest
from click.testing import CliRunner

from helpers import TINY, synthetic_reviews
from lstmkit.cli import main
from lstmkit.explain import explain
from lstmkit.nn.model import load_model
from lstmkit.tasks.calibration import with_temperature


def _labelled(n, seed):
    texts, labels = synthetic_reviews(n, seed=seed)
    return [("pos" if y else "neg", t) for t, y in zip(texts, labels)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    train, test = _labelled(600, seed=3), _labelled(120, seed=4)
    (root / "collection").write_text("".join(f"{y}\t{t}\n" for y, t in train))  # no header, no extension
    export = "\ufefflabel;text\r\n" + "".join(f"{y};{t}\r\n" for y, t in test)
    (root / "test.csv.gz").write_bytes(gzip.compress(export.encode()))
    (root / "test.csv").write_text("".join(f"__label__{y} {t}\n" for y, t in test))  # fastText, misnamed
    return root, test


@pytest.fixture(scope="module")
def trained(files, tmp_path_factory):
    root, _ = files
    out = tmp_path_factory.mktemp("runs") / "model"
    args = ["train", "--data", str(root / "collection"), "--test-data", str(root / "test.csv.gz"), "--out", str(out)]
    r = CliRunner().invoke(main, [*args, "--epochs", "4", "--class-weight", '{"neg": 1.2}', *TINY])
    assert r.exit_code == 0, r.output
    return out, r.output


def test_train_on_a_headerless_tsv_without_extension(trained, files):
    out, output = trained
    assert "collection: no header row; the text is column 1, the label column 0" in output
    assert "classes ['neg', 'pos']" in output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == len(files[1])  # every row of the gzipped semicolon export, its header not one
    assert metrics["accuracy"] > 0.8, metrics  # it learned from the right columns: chance is 0.5
    config = json.loads((out / "config.json").read_text())["train_config"]
    assert config["class_weights"] == {"neg": 1.2, "pos": 1.0} and "class weights: neg 1.2, pos 1" in output


def test_evaluate_reports_pr_auc_calibration_and_draws_pictures(trained, files, tmp_path):
    out, output = trained
    root, test = files
    png, reliability = tmp_path / "cm.png", tmp_path / "reliability.png"
    args = ["evaluate", str(out), "--data", str(root / "test.csv.gz")]
    r = CliRunner().invoke(main, [*args, "--confusion-png", str(png), "--reliability-png", str(reliability)])
    assert r.exit_code == 0, r.output
    assert f"wrote {png}" in r.stderr and "\nPR AUC " in r.stdout and "confusion matrix" in r.stdout
    for picture in (png, reliability):
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 5000
    m = json.loads(CliRunner().invoke(main, [*args, "--json"]).stdout)
    share = sum(y == "pos" for y, _ in test) / len(test)
    assert share < m["pr_auc"] <= 1.0  # above a random ranking's, the share of positives
    # the temperature train fitted on validation is the model's, and evaluate reports its effect
    temperature = json.loads((out / "config.json").read_text())["train_config"]["temperature"]
    assert 0.05 < temperature < 20 and "calibration: temperature" in output
    c = m["calibration"]
    assert (
        c["temperature"] == temperature and f"{c['ece']:.4f} -> {c['ece_calibrated']:.4f} with temperature" in r.stdout
    )
    assert sum(c["bins"]["raw"]["count"]) == len(test)
    text = test[0][1]
    r = CliRunner().invoke(main, ["predict", str(out), text, "--json"])
    p = float(with_temperature(load_model(out).predict([text], calibrated=False), temperature)[0, 0])
    assert json.loads(r.stdout)["probability"] == pytest.approx(max(p, 1 - p), abs=1e-6)  # predict is calibrated
    r = CliRunner().invoke(main, [*args, "--confusion-png", str(tmp_path / "cm.bmp")])
    assert r.exit_code == 2 and "end it in .png, .svg or .pdf" in r.output


def test_the_python_api_and_explain_give_the_calibrated_probability_predict_prints(trained, files):
    out, _ = trained
    texts = [t for _, t in files[1][:5]]
    temperature = json.loads((out / "config.json").read_text())["train_config"]["temperature"]
    assert abs(temperature - 1.0) > 0.01  # else this test would not tell calibrated from raw
    model = load_model(out)
    raw, calibrated = model.predict(texts, calibrated=False), model.predict(texts)
    z = np.log(raw[:, 0] / (1.0 - raw[:, 0]))  # the network's logits, from outside the calibration code
    assert np.allclose(calibrated[:, 0], 1.0 / (1.0 + np.exp(-z / temperature)), atol=1e-6)
    assert calibrated.labels == raw.labels  # the temperature moves probabilities, never labels
    r = CliRunner().invoke(main, ["predict", str(out), *texts, "--json"])
    printed = [json.loads(line)["probability"] for line in r.stdout.splitlines()]
    assert np.allclose(printed, np.asarray(calibrated.probabilities).max(1), atol=1e-6)
    e = explain(model, texts[0])
    assert e["probabilities"][1] == pytest.approx(float(calibrated[0, 0]), abs=1e-5)


def test_evaluate_a_fasttext_file_and_predict_a_headerless_file(trained, files):
    out, _ = trained
    root, test = files
    r = CliRunner().invoke(main, ["evaluate", str(out), "--data", str(root / "test.csv"), "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    assert m["n"] == len(test) and sum(map(sum, m["confusion_matrix"])) == len(test)
    assert m["per_class"]["pos"]["support"] == sum(y == "pos" for y, _ in test)
    args = ["predict", str(out), "--file", str(root / "collection"), "--no-header", "--text-column", "1"]
    r = CliRunner().invoke(main, [*args, "--id-column", "0", "--json"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 600 and rows[0]["text"] == (root / "collection").read_text().split("\n")[0].split("\t")[1]
    assert sum(row["id"] == row["label"] for row in rows) / len(rows) > 0.8  # the id column holds the true label


@pytest.mark.parametrize(
    "name,content,args,message",
    [
        (
            "multi.txt",
            b"__label__a __label__a x\n__label__a y\n",
            [],
            "(one class); a classifier needs at least two labels",
        ),
        ("sheet.xlsx", b"PK\x03\x04\x00\x00", [], "unknown file type (binary content"),
        ("words", b"one text\nanother\n", [], "say the format with --format csv|tsv|jsonl|fasttext"),
        ("ok.tsv", b"label\ttext\npos\tfine\nneg\tbad\n", ["--format", "fasttext"], "line 1 has no __label__ label"),
        ("ok2.tsv", b"label\ttext\npos\tfine\nneg\tbad\n", ["--text-column", "7"], "a name or a 0-based index"),
    ],
)
def test_bad_files_are_one_clear_line(tmp_path, name, content, args, message):
    (tmp_path / name).write_bytes(content)
    r = CliRunner().invoke(main, ["train", "--data", str(tmp_path / name), "--out", str(tmp_path / "m"), *args])
    assert r.exit_code == 2, r.output
    assert message.lower() in r.output.lower() and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1, r.output


def test_predict_a_text_file_with_a_column_is_one_clear_line(trained, tmp_path):
    out, _ = trained
    (tmp_path / "t.txt").write_text("fine\nbad\n")
    r = CliRunner().invoke(main, ["predict", str(out), "--file", str(tmp_path / "t.txt"), "--text-column", "1"])
    assert r.exit_code == 2 and "say so with --format csv|tsv|jsonl" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
