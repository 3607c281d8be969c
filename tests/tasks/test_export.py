"""`lstmkit export` to ONNX, checked with the real onnxruntime: the exported graph's probabilities
equal lstmkit's on texts of mixed lengths (empty and out-of-vocabulary ones too) for the presets'
architectures, a 3-class model with a temperature and the other layer options; the example script
(numpy and onnxruntime only) gives the vectorizer's ids and lstmkit's labels; what does not export
is refused with one line.

Weights are random and large (not one epoch of training, which leaves every probability near 0.5,
where a wrong gate order or a misplaced reverse direction would barely show).
"""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import onnxruntime as ort  # the `export` extra, which the `test` extra installs
import pytest
from click.testing import CliRunner

from helpers import synthetic_reviews
from lstmkit.cli import main
from lstmkit.data.text import TextVectorizer
from lstmkit.errors import LstmkitError
from lstmkit.io import checkpoint
from lstmkit.nn import layers as L
from lstmkit.nn.model import Sequential, load_model
from lstmkit.tasks.classifier import build_model
from lstmkit.tasks.export import export_onnx, onnx_model
from lstmkit.tasks.presets import resolve

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "onnx_predict.py"
SIZES = {"max_tokens": 40, "sequence_length": 12, "embedding_dim": 8, "lstm_units": 8, "dense_units": 8}
TEXTS, _ = synthetic_reviews(60, seed=4)
# Mixed lengths in one batch: empty, out-of-vocabulary only, one word, ordinary, longer than the
# training length, and one past the inference length.
PROBE = [
    "",
    "zzz qqq xyzzy",
    "good",
    *TEXTS[:6],
    " ".join(TEXTS[6:9]),
    " ".join(TEXTS[:12]),
    "bad <br /> Good, really; GOOD!",
]


def _randomized(model, seed, scale=1.0):
    """The model with every weight drawn from N(0, scale^2): gates leave their linear range."""
    rng = np.random.default_rng(seed)
    leaves, tree = jax.tree.flatten(model.params)
    model.params = jax.tree.unflatten(
        tree, [np.float32(scale) * rng.standard_normal(a.shape, np.float32) for a in leaves]
    )
    return model


def _preset_model(preset, n_classes=2, **overrides):
    config = resolve(preset, **{**SIZES, **overrides})
    names = ["neg", "pos"] if n_classes == 2 else [f"c{k}" for k in range(n_classes)]
    model = build_model(config, n_classes, steps_per_epoch=2, class_names=names)
    model.vectorizer.adapt(TEXTS)
    model.build(seed=0)
    return model, config


def _api_model(recurrent, pooling=None, n_classes=2):
    v = TextVectorizer(max_tokens=30, output_sequence_length=10)
    v.adapt(TEXTS)
    layers = [v, L.WordDropout(0.1), L.Embedding(30, 6, mask_zero=True), L.SpatialDropout1D(0.1), *recurrent]
    layers += [pooling] if pooling else []
    layers += [L.Dense(5, "tanh"), L.Dense(1, "sigmoid") if n_classes == 2 else L.Dense(n_classes, "softmax")]
    model = Sequential(layers, class_names=[f"c{k}" for k in range(n_classes)], inference_length=14)
    model.build(seed=1)
    return model, None


ARCHITECTURES = {
    "seed": lambda: _preset_model("seed"),
    "default": lambda: _preset_model("default", bigram_buckets=64, inference_length=30),
    "3-class, 2 layers, max pooling": lambda: _preset_model("default", 3, lstm_layers=2, pooling="max"),
    "BiLSTM sum, mean pooling": lambda: _api_model(
        [L.Bidirectional(L.LSTM(4, return_sequences=True), "sum")], L.GlobalAveragePool()
    ),
    "LSTM go_backwards, last state": lambda: _api_model([L.LSTM(4, go_backwards=True)]),
    "LSTM then BiLSTM mul, 4 classes": lambda: _api_model(
        [L.LSTM(4, return_sequences=True), L.Bidirectional(L.LSTM(3), "mul")], n_classes=4
    ),
    "BiLSTM ave, maxmean": lambda: _api_model(
        [L.Bidirectional(L.LSTM(4, return_sequences=True), "ave")], L.MaxMeanPool()
    ),
}


def _padded(ids):
    out = np.zeros((len(ids), max(1, *map(len, ids))), np.int64)
    for i, row in enumerate(ids):
        out[i, : len(row)] = row
    return out


def _save(model, config, folder, temperature):
    train_config = {**(config or {}), "temperature": temperature}
    checkpoint.save_model(model, folder, train_config=train_config)
    return folder


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_onnxruntime_gives_lstmkits_probabilities(name, tmp_path):
    model, config = ARCHITECTURES[name]()
    _randomized(model, seed=len(name))
    temperature = 1.7 if "3-class" in name else 1.0
    folder = export_onnx(_save(model, config, tmp_path / "m", temperature), tmp_path / "onnx")
    assert sorted(p.name for p in folder.iterdir()) == [
        "export.json",
        "model.onnx",
        "vectorizer.json",
        "vocabulary.txt",
    ]
    loaded = load_model(tmp_path / "m")
    want = loaded.predict(PROBE)  # calibrated by the model's temperature, as `lstmkit predict`
    ids = loaded.vectorizer.encode_ragged(PROBE, loaded.inference_length)
    assert len({len(r) for r in ids}) > 5 and min(map(len, ids)) == 0  # mixed lengths in one batch
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"ids": _padded(ids)})
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert np.ptp(want, axis=0).max() > 0.05  # the probabilities differ from text to text: the check has teeth
    (alone,) = session.run(None, {"ids": _padded(ids[3:4])})  # a row alone equals the row in a padded batch
    np.testing.assert_allclose(alone, want[3:4], atol=1e-5, rtol=0)


def test_the_graph_reads_the_real_tokens_in_reverse_not_the_padding(tmp_path):
    """A reverse direction that started at the padding (ONNX without sequence_lens) would change
    a text's probability with the padding after it; with it, 0 or 50 padded steps give the same."""
    model, config = ARCHITECTURES["seed"]()
    _randomized(model, seed=3)
    session = ort.InferenceSession(onnx_model(model).SerializeToString(), providers=["CPUExecutionProvider"])
    ids = model.vectorizer.encode_ragged([TEXTS[0]], None)[0].astype(np.int64)
    (tight,) = session.run(None, {"ids": ids[None]})
    (padded,) = session.run(None, {"ids": np.pad(ids, (0, 50))[None]})
    np.testing.assert_allclose(tight, padded, atol=1e-6, rtol=0)
    np.testing.assert_allclose(tight, np.asarray(model.predict([TEXTS[0]])), atol=1e-5, rtol=0)


def _example(*args):
    done = subprocess.run([sys.executable, str(EXAMPLE), *map(str, args)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


TRICKY = [
    "",
    "École, CAFÉ! naïve",
    "no\u00a0break\u2003spaces stay inside a token",
    "tabs\tand\nnewlines\rand\x0bvertical\x0cfeeds",
    "<br />Good.<BR/>bad<br>fine< br / >",
    "don't stop--it's (really) [good]",
    "the " * 40,
    "zzz",
]


@pytest.mark.parametrize("name", ["default", "3-class, 2 layers, max pooling"])
def test_the_example_gives_the_vectorizers_ids_and_lstmkits_labels(name, tmp_path):
    """examples/onnx_predict.py, run as a user runs it (a subprocess that imports no lstmkit)."""
    from lstmkit.tasks.use import predict_texts

    model, config = ARCHITECTURES[name]()
    _randomized(model, seed=5)
    folder = export_onnx(_save(model, config, tmp_path / "m", 1.3), tmp_path / "onnx")
    loaded = load_model(tmp_path / "m")
    texts = TRICKY + PROBE
    ids = _example(folder, *texts, "--ids")
    assert ids == [r.tolist() for r in loaded.vectorizer.encode_ragged(texts, loaded.inference_length)]
    whole = max(map(len, loaded.vectorizer.encode_ragged(texts, 0)))
    assert max(map(len, ids)) == min(whole, loaded.inference_length or SIZES["sequence_length"])  # cut as lstmkit cuts
    rows = _example(folder, *texts, "--json")
    want = predict_texts(loaded, texts)
    assert [r["label"] for r in rows] == [w["label"] for w in want]
    np.testing.assert_allclose([r["probability"] for r in rows], [w["probability"] for w in want], atol=1e-5)
    assert len({r["label"] for r in rows}) >= 2  # not one label for every text
    assert all(len(r["probabilities"]) == len(loaded.class_names) for r in rows)
    source = EXAMPLE.read_text()
    assert "import jax" not in source and "lstmkit" not in source.split('"""', 2)[2].split("import onnxruntime")[0]


def _refused(model):
    with pytest.raises(LstmkitError) as e:
        onnx_model(model, where="m")
    message = str(e.value)
    assert "\n" not in message and message.startswith("m cannot be exported to ONNX")
    return message


def test_what_does_not_export_is_refused_with_the_layer_named():
    v = TextVectorizer(max_tokens=30, output_sequence_length=10)
    v.adapt(TEXTS)

    def model(*layers):
        m = Sequential([v, *layers])
        m.build(seed=0)
        return m

    head = [L.Dense(1, "sigmoid")]
    no_mask = model(L.Embedding(30, 4), L.LSTM(4), *head)
    assert "layer 0 (Embedding) has mask_zero=False" in _refused(no_mask)
    every_step = model(L.Embedding(30, 4, mask_zero=True), L.LSTM(4, return_sequences=True), *head)
    assert "layer 2 (Dense) reads one vector per text but gets a sequence" in _refused(every_step)
    flipped = model(
        L.Embedding(30, 4, mask_zero=True),
        L.LSTM(4, return_sequences=True, go_backwards=True),
        L.GlobalMaxPool(),
        *head,
    )
    assert "go_backwards with return_sequences" in _refused(flipped)
    pooled_twice = model(L.Embedding(30, 4, mask_zero=True), L.LSTM(4), L.GlobalMaxPool(), *head)
    assert "layer 2 (GlobalMaxPool) reads a sequence" in _refused(pooled_twice)


def test_a_vectorizer_the_example_cannot_reproduce_is_refused(tmp_path):
    v = TextVectorizer(max_tokens=30, output_sequence_length=10, ngrams=2)
    v.adapt(TEXTS)
    m = Sequential([v, L.Embedding(30, 4, mask_zero=True), L.LSTM(4), L.Dense(1, "sigmoid")], class_names=["a", "b"])
    m.build(seed=0)
    checkpoint.save_model(m, tmp_path / "m")
    with pytest.raises(LstmkitError, match="ngrams"):
        export_onnx(tmp_path / "m", tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()


def test_the_command_writes_the_folder_and_replaces_it_only_with_overwrite(tmp_path):
    model, config = ARCHITECTURES["seed"]()
    _save(model, config, tmp_path / "m", 1.0)
    args = ["export", str(tmp_path / "m"), "--format", "onnx", "--out", str(tmp_path / "onnx")]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "wrote" in first.stdout and (tmp_path / "onnx" / "model.onnx").is_file()
    export = json.loads((tmp_path / "onnx" / "export.json").read_text())
    assert export["class_names"] == ["neg", "pos"] and export["max_length"] == SIZES["sequence_length"]
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "already holds an ONNX export; replace it with --overwrite" in again.stderr
    assert CliRunner().invoke(main, [*args, "--overwrite"]).exit_code == 0


def test_the_readmes_export_lines_run_as_written(tmp_path, monkeypatch):
    """The bash block of the README's "Export to ONNX", on a saved model at runs/m."""
    block = re.search(r"^## Export to ONNX\n.*?```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S | re.M)
    lines = [shlex.split(line, comments=True) for line in block.group(1).splitlines() if line.strip()]
    assert [words[0] for words in lines] == ["lstmkit", "python"]
    monkeypatch.chdir(tmp_path)
    model, config = ARCHITECTURES["seed"]()
    _save(model, config, Path("runs/m"), 1.0)
    result = CliRunner().invoke(main, lines[0][1:])
    assert result.exit_code == 0, result.output
    script, *args = lines[1][1:]
    assert (ROOT / script) == EXAMPLE
    done = subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert [r[0] for r in rows] == ["1", "2"] and {r[1] for r in rows} <= {"neg", "pos"}


def test_without_onnx_the_command_says_which_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    result = CliRunner().invoke(main, ["export", str(tmp_path / "m"), "--out", str(tmp_path / "onnx")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "pip install 'lstmkit[export]'" in result.stderr and not (tmp_path / "onnx").exists()


def test_an_ensembles_graph_gives_the_mean_of_its_members(tmp_path):
    """Three members in one graph: onnxruntime gives lstmkit's ensemble probabilities (with a
    temperature), which are not the first member's alone."""
    model, config = _preset_model("default", 3, bigram_buckets=64, inference_length=30)
    members = [_randomized(model, seed=s).params for s in (21, 22, 23)]
    model.params, model.ensemble = members[0], tuple(members[1:])
    folder = export_onnx(_save(model, config, tmp_path / "m", 1.3), tmp_path / "onnx")
    loaded = load_model(tmp_path / "m")
    assert len(loaded.members) == 3
    want = loaded.predict(PROBE)
    ids = loaded.vectorizer.encode_ragged(PROBE, loaded.inference_length)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"ids": _padded(ids)})
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    loaded.ensemble = ()
    assert np.abs(loaded.predict(PROBE) - want).max() > 0.05
