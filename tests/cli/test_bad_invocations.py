"""Bad invocations and hostile inputs, one table (#22): each ends with exit status 2, exactly one
line on stderr that names the problem, no traceback, and nothing written anywhere.

The commands run in-process (click's CliRunner) from an empty working folder; the folder that
holds the inputs and the working folder are listed before and after, and must not change. The
last test runs `lstmkit explain` in a fresh process, where `lstmkit.explain` had not been
imported by anything else first (it printed a traceback there and nowhere in-process).
"""

import io
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from click.testing import CliRunner

from helpers import resign_config, saved_model, synthetic_reviews
from lstmkit.cli import main


def _csv(path, rows, header="review,sentiment"):
    path.write_text("\n".join([header, *rows]) + "\n")


def _reviews(n=40):
    texts, labels = synthetic_reviews(n, seed=5)
    return [f"{t},{'positive' if y else 'negative'}" for t, y in zip(texts, labels)]


def _model_variant(root, name, edit, sign=True):
    """A copy of the good model directory with config.json edited (re-signed unless `sign` is False)."""
    import shutil

    target = root / name
    shutil.copytree(root / "model", target)
    if sign:
        resign_config(target, edit)
    else:
        path = target / "config.json"
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def _with_extra_tensor(root):
    """The good model with a 64 MiB tensor more in its weights file (a hole on disk), checksums
    updated: only the shape check from the header can refuse it."""
    import shutil

    from lstmkit.atomic import sha256

    target = root / "extra-tensor"
    shutil.copytree(root / "model", target)
    weights = target / "weights.safetensors"
    raw = weights.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
    header["huge"] = {"dtype": "F32", "shape": [2**24], "data_offsets": [end, end + 2**26]}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(weights, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + raw[8 + n :])
        f.truncate(8 + len(text) + end + 2**26)
    resign_config(target, lambda c: {**c, "files": {**c["files"], "weights.safetensors": sha256(weights)}})


def _three_class_model(directory):
    """A saved model with a softmax over three classes (built weights, no training)."""
    from lstmkit.data.text import TextVectorizer
    from lstmkit.io import checkpoint
    from lstmkit.nn.layers import LSTM, Bidirectional, Dense, Embedding
    from lstmkit.nn.model import Sequential

    vectorizer = TextVectorizer(max_tokens=32, output_sequence_length=24)
    vectorizer.adapt(synthetic_reviews(50, seed=1)[0])
    model = Sequential([vectorizer, Embedding(32, 8, mask_zero=True), Bidirectional(LSTM(8)), Dense(3, "softmax")])
    model.build(seed=0)
    model.class_names = ["bad", "fine", "good"]
    checkpoint.save_model(model, directory)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Every input the table refers to, made once."""
    root = tmp_path_factory.mktemp("inputs")
    saved_model(root / "model")
    _three_class_model(root / "three-classes")
    _model_variant(root, "pretrained-kind", lambda c: {**c, "kind": "lstmkit-pretrained"})
    _model_variant(root, "format-minus-5", lambda c: {**c, "format_version": -5})
    _model_variant(root, "format-true", lambda c: {**c, "format_version": True})
    _model_variant(root, "absolute-files", lambda c: {**c, "files": {"/dev/zero": "0" * 64}})
    _model_variant(root, "no-files", lambda c: {k: v for k, v in c.items() if k != "files"}, sign=False)
    _model_variant(root, "config-list", lambda c: [c])
    _model_variant(root, "unknown-key", lambda c: {**c, "surprise": True})
    _model_variant(root, "wrong-type", lambda c: {**c, "status": 3})
    _with_extra_tensor(root)
    (root / "vocab-too-big").mkdir()
    _model_variant(root, "vocab-too-big/m", lambda c: c)
    with open(root / "vocab-too-big/m/vocabulary.txt", "a") as f:
        f.write("".join(f"extra{i}\n" for i in range(100)))
    from lstmkit.atomic import sha256

    resign_config(
        root / "vocab-too-big/m",
        lambda c: {**c, "files": {**c["files"], "vocabulary.txt": sha256(root / "vocab-too-big/m/vocabulary.txt")}},
    )

    _csv(root / "dup-header.csv", [f"x,{r}" for r in _reviews()], header="review,review,sentiment")
    _csv(root / "good.csv", _reviews())
    _csv(root / "nan-label.csv", [*_reviews(), "meh,NaN"])
    _csv(root / "one-class.csv", [f"a good film {i},positive" for i in range(30)])
    _csv(root / "unknown-class.csv", ["a good film,positive", "so so,neutral"])
    (root / "deep.jsonl").write_text('{"review": "ok", "sentiment": "a"}\n{"review": ' + "[" * 100_000 + "]" * 100_000 + "}\n")  # fmt: skip
    lines = [json.dumps({"review": t.split(",")[0], "sentiment": t.split(",")[1]}) for t in _reviews()]
    (root / "surrogate.jsonl").write_text("\n".join([*lines[:3], '{"review": "good \\ud800 film", "sentiment": "positive"}', *lines[3:]]) + "\n")  # fmt: skip
    (root / "users-folder").mkdir()
    (root / "users-folder" / "notes.txt").write_text("my notes\n")
    (root / "a-file").write_text("not a folder\n")
    (root / "a-folder").mkdir()
    (root / "home-with-datasets-file").mkdir()
    (root / "home-with-datasets-file" / "datasets").write_text("")
    (root / "history-bad").mkdir()
    (root / "history-bad" / "history.json").write_text("[1, 2")
    outside = root / "outside"
    (outside).mkdir()
    (outside / "1.txt").write_text("not a review")
    (root / "linked-classes" / "good").mkdir(parents=True)
    (root / "linked-classes" / "good" / "a.txt").write_text("fine")
    (root / "linked-classes" / "bad").symlink_to(outside, target_is_directory=True)
    with tarfile.open(root / "pax.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        pax = tarfile.TarInfo("././@PaxHeader")
        pax.type, pax.size = tarfile.XHDTYPE, 9
        tar.addfile(pax, io.BytesIO(b"0 path=x\n"))
    return root


# (arguments with {root} for the inputs' folder, standard input or None, what the line must say)
TABLE = [
    # --out: never the user's files, the working folder, a file, or a finished model without --overwrite
    (["train", "--data", "{root}/nan-label.csv", "--out", "."], None, "is the folder you are working in"),
    (["train", "--data", "{root}/nan-label.csv", "--out", ".."], None, "is the folder you are working in"),
    (["train", "--data", "{root}/nan-label.csv", "--out", "{root}/users-folder"], None, "never replaces it"),
    (["train", "--data", "{root}/nan-label.csv", "--out", "{root}/a-file"], None, "is a file"),
    (["train", "--data", "{root}/nan-label.csv", "--out", "{root}/a-file/m"], None, "choose a writable output folder"),
    (["train", "--data", "{root}/nan-label.csv", "--out", "{root}/model"], None, "replace it with --overwrite"),
    (["train", "--data", "{root}/nan-label.csv", "--out", "m", "--resume"], None, "no interrupted run to resume"),
    # flags
    (["train", "--learning-rate", "-1", "--out", "m"], None, "--learning-rate must be 0 or more"),
    (["train", "--batch-size", "0", "--out", "m"], None, "--batch-size must be at least 1"),
    (["train", "--epochs", "0", "--out", "m"], None, "--epochs must be at least 1"),
    (["train", "--validation", "1.5", "--out", "m"], None, "--validation must be"),
    (["train", "--pooling", "median", "--out", "m"], None, "Invalid value for '--pooling'"),
    (["train", "--no-such-flag"], None, "No such option"),
    (["no-such-command"], None, "No such command"),
    (["predict"], None, "Missing argument 'MODEL_DIR'"),
    (["predict", "{root}/model", "x", "--batch-size", "0"], None, "Invalid value for '--batch-size'"),
    (["predict", "{root}/model", "x", "--top-k", "-1"], None, "Invalid value for '--top-k'"),
    (["predict", "{root}/model", "x", "--threshold", "1.5"], None, "Invalid value for '--threshold'"),
    (["predict", "{root}/model", "x", "--threshold", "0"], None, "Invalid value for '--threshold'"),
    (
        ["predict", "{root}/three-classes", "x", "--threshold", "0.7"],
        None,
        "--threshold is for a model with two classes",
    ),
    (["inspect"], None, "Missing argument 'DATA'"),
    (["inspect", "{root}/good.csv", "--max-tokens", "2"], None, "Invalid value for '--max-tokens'"),
    (["inspect", "{root}/good.csv", "--sequence-length", "0"], None, "Invalid value for '--sequence-length'"),
    (["inspect", "{root}/good.csv", "--preset", "huge"], None, "Invalid value for '--preset'"),
    # data the model is trained or scored on
    (["train", "--data", "{root}/missing.csv", "--out", "m"], None, "does not exist"),
    (["train", "--data", "{root}/dup-header.csv", "--out", "m"], None, "names column 'review' more than once"),
    (["train", "--data", "{root}/nan-label.csv", "--out", "m"], None, "row 41: the label is NaN (a missing value)"),
    (["train", "--data", "{root}/one-class.csv", "--out", "m"], None, "at least two classes"),
    (["train", "--data", "{root}/deep.jsonl", "--out", "m"], None, "deep.jsonl line 2 nests its JSON too deeply"),
    (
        ["train", "--data", "{root}/surrogate.jsonl", "--out", "m"],
        None,
        "surrogate.jsonl line 4: a text holds a lone surrogate",
    ),
    (["train", "--data", "{root}/linked-classes", "--out", "m"], None, "outside"),
    (["train", "--data", "{root}/pax.tar", "--out", "m"], None, "pax record has length"),
    (["inspect", "{root}/missing.csv"], None, "does not exist"),
    (["inspect", "{root}/good.csv", "--test-data", "{root}/missing.csv"], None, "does not exist"),
    (["inspect", "{root}/nan-label.csv"], None, "row 41: the label is NaN (a missing value)"),
    (["inspect", "{root}/deep.jsonl"], None, "deep.jsonl line 2 nests its JSON too deeply"),
    (["inspect", "{root}/good.csv", "--text-column", "nope"], None, "nope"),
    (["evaluate", "{root}/model", "--data", "{root}/unknown-class.csv"], None, "neutral"),
    (
        ["evaluate", "{root}/model", "--data", "{root}/good.csv", "--positive-class", "maybe"],
        None,
        "--positive-class 'maybe' is not one of",
    ),
    # model directories: missing, foreign, edited, hostile
    (["predict", "{root}/nope", "x"], None, "does not exist"),
    (["predict", "{root}/pretrained-kind", "x"], None, "holds a pretrained language model, not a classifier"),
    (["evaluate", "{root}/pretrained-kind", "--data", "{root}/good.csv"], None, "not a classifier"),
    (["explain", "{root}/pretrained-kind", "x"], None, "not a classifier"),
    (["predict", "{root}/format-minus-5", "x"], None, "has format_version -5, which no lstmkit writes"),
    (["predict", "{root}/format-true", "x"], None, "has no format_version"),
    (["predict", "{root}/absolute-files", "x"], None, "lists its files wrongly"),
    (["predict", "{root}/no-files", "x"], None, "corrupted or was edited"),
    (["predict", "{root}/config-list", "x"], None, "is not an lstmkit config"),
    (["predict", "{root}/unknown-key", "x"], None, "unknown key 'surprise'"),
    (["predict", "{root}/wrong-type", "x"], None, "'status' is a int"),
    (["predict", "{root}/extra-tensor", "x"], None, "holds a tensor 'huge' that the config's layers do not have"),
    (["predict", "{root}/vocab-too-big/m", "x"], None, "vocabulary.txt holds 122 ids but the config says 22"),
    # what the commands read and write
    (["predict", "{root}/model"], "", "no text to label"),
    (["predict", "{root}/model"], "\n  \n", "no text to label"),
    (["predict", "{root}/model", "--file", "{root}/missing.txt"], None, "does not exist"),
    (["predict", "{root}/model", "--file", "{root}/good.csv", "--id-column", "nope"], None, "no column 'nope'"),
    (["explain", "{root}/model", "a fine film", "--html", "{root}/a-folder"], None, "it is a folder"),
    (["explain", "{root}/model", "a fine film", "--png", "{root}/a-folder"], None, "it is a folder"),
    (["plot", "{root}/model"], None, "no history.json"),
    (["plot", "{root}/history-bad"], None, "history.json"),
    (["plot", "{root}/model", "--out", "{root}/a-folder"], None, "folder"),
    # export: the model, the format and --out are checked before anything is written
    (["export", "{root}/model"], None, "Missing option '--out'"),
    (["export", "{root}/model", "--format", "tflite", "--out", "x"], None, "Invalid value for '--format'"),
    (["export", "{root}/nope", "--out", "x"], None, "does not exist"),
    (["export", "{root}/pretrained-kind", "--out", "x"], None, "not a classifier"),
    (["export", "{root}/model", "--out", "{root}/users-folder"], None, "never replaces it"),
    (["export", "{root}/model", "--out", "{root}/a-file"], None, "is a file"),
    (["export", "{root}/model", "--out", "{root}/model"], None, "holds an lstmkit model directory, not an onnx one"),
    (["export", "{root}/model", "--out", "."], None, "is the folder you are working in"),
    # tune: the budget, the preset and --out are checked before the data is read
    (["tune", "--out", "m"], None, "Missing option '--minutes'"),
    (["tune", "--minutes", "0", "--out", "m"], None, "--minutes must be a positive number of minutes"),
    (["tune", "--minutes", "-5", "--out", "m"], None, "--minutes must be a positive number of minutes"),
    (["tune", "--minutes", "1", "--trials", "0", "--out", "m"], None, "--trials must be at least 1"),
    (["tune", "--minutes", "1", "--preset", "nope", "--out", "m"], None, "unknown preset 'nope'"),
    (["tune", "--minutes", "1", "--preset", "seed", "--out", "m"], None, "add --validation 0.1"),
    (["tune", "--minutes", "1", "--out", "{root}/users-folder"], None, "never replaces it"),
    (
        ["tune", "--minutes", "1", "--data", "{root}/good.csv", "--out", "{root}/model"],
        None,
        "replace it with --overwrite",
    ),
]


def _listing(*folders):
    return {
        str(p): (p.is_dir(), p.stat().st_size if p.is_file() else 0)
        for folder in folders
        for p in [folder, *folder.rglob("*")]
        if not p.is_symlink()
    }


@pytest.mark.parametrize("args, stdin, message", TABLE, ids=[" ".join(a)[:60] for a, _, _ in TABLE])
def test_a_mistake_is_one_line_exit_2_and_writes_nothing(root, tmp_path, monkeypatch, args, stdin, message):
    work = tmp_path / "work"  # the working folder: relative paths (--out m) land here
    work.mkdir()
    monkeypatch.chdir(work)
    before = _listing(root, work)
    result = CliRunner().invoke(main, [a.format(root=root) for a in args], input=stdin)
    assert result.exit_code == 2, (result.output, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.output and result.stdout == ""
    assert _listing(root, work) == before


def test_the_imdb_download_folder_being_a_file_is_one_line(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    home = root / "home-with-datasets-file"
    result = CliRunner().invoke(main, ["train", "--data", "imdb", "--out", "m"], env={"LSTMKIT_HOME": str(home)})
    assert result.exit_code == 2, result.output
    assert "cannot keep the download in" in result.stderr and "set LSTMKIT_HOME to a writable folder" in result.stderr
    assert os.listdir(tmp_path) == [] and os.listdir(home) == ["datasets"]


def test_text_that_is_not_utf8_is_explained_not_a_traceback(root, tmp_path):
    """A fresh process (the CLI's own imports only); bytes that are not UTF-8 on the command line
    and on standard input become U+FFFD, as in files, and the page is written."""
    env = {**os.environ, "LSTMKIT_COMPILE_CACHE": "0"}
    cli = [sys.executable, "-m", "lstmkit.cli", "explain", str(root / "model")]
    page = tmp_path / "page.html"
    done = subprocess.run([*cli, b"caf\xe9 \xff good", "--html", str(page)], capture_output=True, env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert "\ufffd" in page.read_text(encoding="utf-8")
    done = subprocess.run([*cli, "-", "--json"], input=b"a \xff\xfe film", capture_output=True, env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["text"] == "a \ufffd\ufffd film" and json.loads(done.stdout)["schema_version"] == 1
    assert np.isfinite(json.loads(done.stdout)["probability"])


def test_a_disk_too_small_for_a_checkpoint_is_refused_before_the_first_epoch(root, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from helpers import TINY

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 20, 10 << 20, 1 << 20))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["train", "--data", str(root / "good.csv"), "--out", "m", *TINY])
    assert result.exit_code == 2, result.output
    assert "has 1 MiB free; a checkpoint of this model needs about" in result.stderr
    assert "epoch 1" not in result.stdout and os.listdir(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_parent_of_out_is_refused_before_the_data_is_read(tmp_path):
    parent = tmp_path / "read-only"
    parent.mkdir()
    parent.chmod(0o555)
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "absent.csv"), "--out", str(parent / "m")])
    parent.chmod(0o755)
    assert result.exit_code == 2 and "choose a writable output folder" in result.stderr


def test_resume_with_other_data_is_refused(root, tmp_path, monkeypatch):
    """--resume used to continue silently on whatever --data said; the checkpoint now knows its data."""
    from helpers import TINY
    from lstmkit.io import checkpoint

    real_save = checkpoint.save_model

    def save_then_interrupt(*a, **kw):
        real_save(*a, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save_model", save_then_interrupt)
    out = tmp_path / "run"
    args = ["train", "--out", str(out), "--epochs", "2", *TINY]
    assert CliRunner().invoke(main, [*args, "--data", str(root / "good.csv")]).exit_code == 130
    monkeypatch.setattr(checkpoint, "save_model", real_save)
    other = tmp_path / "other.csv"
    _csv(other, [r.replace("film", "movie") for r in _reviews(60)])
    result = CliRunner().invoke(main, [*args, "--data", str(other), "--resume"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        f"Error: the interrupted run in {out} trained on other data (or another split of it); "
        "resume it with the same --data, or start again with --overwrite"
    ]
