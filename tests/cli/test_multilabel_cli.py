"""Multi-label end to end on a fastText file with several labels per line that the test writes:
train learns it and stores a threshold per label, evaluate reports it (checked against
scikit-learn), predict prints label sets, and thresholds, loading and bad input behave."""

import json
import signal

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import f1_score

from helpers import TINY, Server, resign_config
from lstmkit.cli import main
from lstmkit.nn.model import load_model

TOPICS = {
    "sports": ["football", "tennis", "goal", "match", "team"],
    "politics": ["vote", "election", "minister", "senate", "law"],
    "science": ["atom", "cell", "physics", "lab", "theory"],
}
# TINY, plus what lets it learn in seconds: 15 epochs of 0.1 s (compiling is what takes time), no regularisation.
SMALL_AND_QUICK = ["--epochs", "15", "--learning-rate", "0.02", "--warmup-steps", "0", "--weight-average", "0"]
SMALL_AND_QUICK += ["--adversarial", "0", "--dropout", "0", "--embedding-dropout", "0", "--bigram-buckets", "0"]
FILLER = ["the", "a", "of", "today", "people", "new", "said", "and", "it", "was"]


def topic_texts(n, seed):
    """Texts with a label per topic whose word they hold: each topic on its own with p = 0.4, at least one."""
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < n:
        chosen = [name for name in TOPICS if rng.random() < 0.4]
        if not chosen:
            continue
        words = list(rng.choice(FILLER, rng.integers(3, 9)))
        for name in chosen:
            words.insert(rng.integers(len(words) + 1), rng.choice(TOPICS[name]))
        rows.append((chosen, " ".join(words)))
    return rows


def fasttext_lines(rows):
    return "".join(" ".join(f"__label__{t}" for t in labels) + f" {text}\n" for labels, text in rows)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("multilabel")
    (root / "train.txt").write_text(fasttext_lines(topic_texts(500, seed=0)))
    test_rows = topic_texts(150, seed=1)
    (root / "test.txt").write_text(fasttext_lines(test_rows))
    out = root / "model"
    args = ["train", "--data", str(root / "train.txt"), "--test-data", str(root / "test.txt"), "--out", str(out)]
    r = CliRunner().invoke(main, [*args, *TINY, *SMALL_AND_QUICK])
    assert r.exit_code == 0, r.output
    return root, out, test_rows, r.output


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_train_learns_the_label_sets_and_stores_a_threshold_per_label(trained):
    root, out, _, output = trained
    assert "thresholds tuned on validation" in output and "calibration: none for multi-label" in output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["multi_label"] and metrics["micro"]["f1"] > 0.8, metrics["micro"]  # chance: about 0.5
    model = load_model(out)
    assert model.architecture.multi_label and model.class_names == ["politics", "science", "sports"]
    thresholds = model.train_config["thresholds"]
    assert sorted(thresholds) == model.class_names and all(0 < t < 1 for t in thresholds.values())
    assert model.thresholds.tolist() == pytest.approx([thresholds[n] for n in model.class_names])
    p = model.predict(["the minister said a goal", "atom today"])
    assert p.shape == (2, 3) and p.labels == [["politics", "sports"], ["science"]]


def test_evaluate_reports_micro_and_macro_f1_as_scikit_learn_does(trained):
    root, out, test_rows, _ = trained
    r = _invoke("evaluate", out, "--data", root / "test.txt", "--json")
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    assert m["schema_version"] == 1 and m["n"] == len(test_rows)
    model = load_model(out)
    names = model.class_names
    truth = np.array([[name in labels for name in names] for labels, _ in test_rows], int)
    predicted = np.asarray(model.predict([text for _, text in test_rows])) >= model.thresholds
    assert m["micro"]["f1"] == pytest.approx(f1_score(truth, predicted, average="micro"))
    assert m["macro"]["f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert m["per_class"]["sports"]["support"] == truth[:, names.index("sports")].sum()
    text = _invoke("evaluate", out, "--data", root / "test.txt").output
    assert "subset accuracy" in text and "micro avg" in text and "macro avg" in text and "threshold" in text


def test_predict_prints_label_sets_and_threshold_overrides_them(trained):
    _, out, _, _ = trained
    r = _invoke("predict", out, "the minister said a goal", "atom today", "--json")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert sorted(rows[0]["labels"]) == ["politics", "sports"] and rows[1]["labels"] == ["science"]
    assert set(rows[0]["probabilities"]) == {"politics", "sports"} and rows[0]["line"] == 1
    assert rows[1]["line"] == 2 and rows[1]["schema_version"] == 1
    everything = _invoke("predict", out, "people of today", "--json", "--threshold", "0.0001", "--top-k", "2")
    row = json.loads(everything.output)
    assert row["labels"] == [t["label"] for t in row["top_k"]] + [n for n in row["labels"][2:]]
    assert len(row["labels"]) == 3 and len(row["top_k"]) == 2
    line = _invoke("predict", out, "atom today").output.strip().split("\t")
    assert line[:2] == ["1", "science"] and 0.5 < float(line[2]) <= 1


def test_changed_thresholds_change_predictions_and_bad_ones_are_refused(trained, tmp_path):
    import shutil

    _, out, _, _ = trained
    copy = tmp_path / "m"
    shutil.copytree(out, copy)

    def thresholds_to(values):
        def edit(config):
            config["train_config"]["thresholds"] = values
            return config

        return edit

    text = "the minister said a goal"
    politics, science, sports = np.asarray(load_model(copy).predict([text]))[0].astype(float)
    assert politics < 1 and science > 0  # room above the one and below the other
    resign_config(copy, thresholds_to({"politics": (politics + 1) / 2, "science": science / 2, "sports": 0.5}))
    assert load_model(copy).predict([text]).labels == [["science", "sports"]]
    for bad, message in (
        ({"politics": 1.5, "science": 0.5, "sports": 0.5}, "between 0 and 1"),
        ([0.5], "name the model's classes"),
    ):
        resign_config(copy, thresholds_to(bad))
        r = _invoke("predict", copy, "a goal")
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
    resign_config(copy, thresholds_to({"politics": 0.5, "science": 0.5, "sports": 0.5}))
    config = json.loads((copy / "config.json").read_text())
    config["train_config"]["thresholds"]["politics"] = 0.1  # edited without its checksum
    (copy / "config.json").write_text(json.dumps(config))
    r = _invoke("evaluate", copy, "--data", out.parent / "test.txt")
    assert r.exit_code == 2 and "corrupted or was edited" in r.output, r.output


@pytest.mark.parametrize(
    "name,content,args,message",
    [
        ("none.jsonl", '{"text": "a b"}\n{"text": "c"}\n', ["--multi-label"], "no label column found"),
        ("gap.jsonl", '{"text": "a b", "labels": ["x", " "]}\n{"text": "c", "labels": ["y"]}\n', [], "the label list"),
        (
            "w.txt",
            "__label__a __label__b x\n__label__a y\n" * 10,
            ["--class-weight", "balanced"],
            "drop --class-weight",
        ),
    ],
)
def test_bad_multi_label_input_is_one_clear_line(tmp_path, name, content, args, message):
    (tmp_path / name).write_text(content)
    r = _invoke("train", "--data", tmp_path / name, "--out", tmp_path / "m", *args)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
    said = r.output.strip().splitlines()
    assert said[-1].startswith("Error: ") and sum("Error" in line for line in said) == 1, r.output


def test_tune_reads_a_csv_as_multi_label_and_keeps_the_thresholds(tmp_path):
    rows = topic_texts(300, seed=2)
    (tmp_path / "topics.csv").write_text("text,labels\n" + "".join(f"{t},{'|'.join(ls)}\n" for ls, t in rows))
    args = ["tune", "--data", tmp_path / "topics.csv", "--multi-label", "--minutes", "5", "--trials", "1"]
    r = _invoke(*args, "--out", tmp_path / "m", *TINY, *SMALL_AND_QUICK)
    assert r.exit_code == 0, r.output
    model = load_model(tmp_path / "m")
    assert model.architecture.multi_label and model.class_names == ["politics", "science", "sports"]
    assert sorted(model.train_config["thresholds"]) == model.class_names
    # learned: chance is about 0.5; this small model's micro F1 is 0.73 to 0.99 across seeds 0-4
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["micro"]["f1"] > 0.65


# The model the tests above trained, through the other ways to use it (one training for all).


def test_explain_explains_the_likeliest_label_and_lists_the_set(trained):
    from lstmkit.explain import explain

    _, out, _, _ = trained
    model = load_model(out)
    e = explain(model, "the minister said a goal")
    p = np.asarray(model.predict(["the minister said a goal"]))[0]
    assert e["multi_label"] and e["labels"] == ["politics", "sports"]
    assert e["target_class"] == model.class_names[int(np.argmax(p))] and e["probabilities"] == pytest.approx(
        p, abs=1e-5
    )
    words = e["words"][: e["n_used"]]
    topic_word = "minister" if e["target_class"] == "politics" else "goal"
    assert e["attribution"][words.index(topic_word)] == max(e["attribution"])  # the label's own word moved it most
    r = _invoke("explain", out, "the minister said a goal")
    assert r.exit_code == 0 and r.output.startswith("labels: politics, sports; explained:"), r.output
    other = "sports" if e["target_class"] == "politics" else "politics"
    chosen = explain(model, "the minister said a goal", label=other)  # --label: another label of the set
    assert chosen["target_class"] == other and chosen["labels"] == e["labels"]
    assert chosen["attribution"][words.index("goal" if other == "sports" else "minister")] == max(chosen["attribution"])
    assert chosen["memory"]["gradient_norm"] != e["memory"]["gradient_norm"]  # the gradients follow that label
    r = _invoke("explain", out, "a goal", "--label", "cooking")
    assert r.exit_code == 2 and "has no class 'cooking'" in r.output, r.output


def test_serve_answers_label_sets_and_explains_a_chosen_label(trained):
    _, out, _, _ = trained
    model = load_model(out)
    texts = ["the minister said a goal", "atom today"]
    server = Server(out, "--max-batch", "1")  # a real `lstmkit serve` on 127.0.0.1
    try:
        with server.client() as http:
            r = http.post("/v1/predict", json={"texts": texts, "top_k": 1})
            chosen = http.post("/v1/explain", json={"text": texts[0], "label": "sports"})
            unknown = http.post("/v1/explain", json={"text": texts[0], "label": "weather"})
    finally:
        assert server.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    assert r.status_code == 200, r.text
    rows = r.json()["predictions"]
    expected = model.predict(texts)
    assert [sorted(row["labels"]) for row in rows] == expected.labels
    for row, p in zip(rows, np.asarray(expected)):
        assert [row["probabilities"][n] for n in model.class_names] == pytest.approx(p, abs=1e-5)
        assert row["top_k"][0]["label"] == model.class_names[int(np.argmax(p))] and "label" not in row
    assert chosen.status_code == 200 and chosen.json()["target_class"] == "sports", chosen.text
    assert sorted(chosen.json()["labels"]) == ["politics", "sports"]
    assert unknown.status_code == 422 and unknown.json()["field"] == "label" and "weather" in unknown.json()["error"]


def test_onnx_export_gives_the_k_sigmoids_and_the_thresholds(trained, tmp_path):
    import onnxruntime as ort

    from lstmkit.tasks.export import export_onnx

    root, out, test_rows, _ = trained
    folder = export_onnx(out, tmp_path / "onnx")
    model = load_model(out)
    texts = [text for _, text in test_rows[:20]]
    ids = model.vectorizer.encode_ragged(texts, model.inference_length)
    padded = np.zeros((len(ids), max(map(len, ids))), np.int64)
    for i, row in enumerate(ids):
        padded[i, : len(row)] = row
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"ids": padded})
    want = np.asarray(model.predict(texts))
    assert got.shape == want.shape == (20, 3)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    export = json.loads((folder / "export.json").read_text())
    assert export["thresholds"] == pytest.approx(dict(zip(model.class_names, model.thresholds.tolist())))


def test_inspect_counts_each_label_and_the_labels_per_text(tmp_path):
    rows = [(["sports", "politics"], "a goal and a vote"), (["sports"], "tennis"), (["science"], "atom")] * 4
    (tmp_path / "t.txt").write_text(fasttext_lines(rows))
    r = _invoke("inspect", tmp_path / "t.txt", "--json")
    assert r.exit_code == 0, r.output
    train = json.loads(r.output)["splits"]["train"]
    assert train["labels"] == {
        "politics": {"count": 4, "share": 4 / 12},
        "science": {"count": 4, "share": 4 / 12},
        "sports": {"count": 8, "share": 8 / 12},
    }
    assert train["labels_per_text"] == {"mean": 16 / 12, "none": 0, "several": 4}
    assert train["duplicates"]["conflicting"] == 0  # copies with the same set of labels agree
    text = _invoke("inspect", tmp_path / "t.txt").output
    assert "1.33 labels per text; 4 with several, 0 with none" in text


def test_the_readmes_multi_label_lines_run_as_written(trained, tmp_path, monkeypatch):
    """The README's multi-label block on stand-in topic files; its training line gets this file's
    small flags (the model of `trained`'s shape, so nothing compiles again)."""
    import re
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"^### Multi-label\n.*?```bash\n(.*?)```", readme, flags=re.S | re.M).group(1)
    lines = [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines()]
    commands = [words[1:] for words in lines if words and words[0] == "lstmkit"]
    assert [c[0] for c in commands] == ["train", "evaluate", "predict", "predict"]
    monkeypatch.chdir(tmp_path)
    # as many texts as `trained`'s: as many steps, so the same schedule, the same compiled code
    Path("topics.train").write_text(fasttext_lines(topic_texts(500, seed=2)))
    Path("topics.test").write_text(fasttext_lines(topic_texts(150, seed=3)))
    for argv in commands:
        r = CliRunner().invoke(main, [*argv, *TINY, *SMALL_AND_QUICK] if argv[0] == "train" else argv)
        assert r.exit_code == 0, f"lstmkit {shlex.join(argv)}\n{r.output}"
    assert "politics" in r.output and '"labels"' in r.output
