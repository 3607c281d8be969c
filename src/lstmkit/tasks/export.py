"""`lstmkit export`: a saved classifier as an ONNX graph, with its vocabulary and vectorizer beside it.

The folder it writes (staged and swapped in whole, as a model directory):

    model.onnx        ids (B, T) int64, right-padded with 0 -> probabilities (B, 1) or (B, K) float32,
                      the same numbers as `lstmkit predict` (its temperature included)
    vocabulary.txt,
    vectorizer.json   the model's TextVectorizer, as in the model directory
    export.json       what a reader needs besides: the class names, how many tokens a text is cut
                      to (`max_length`), the input and output names, the temperature, checksums

What exports: the layers the presets and `lstmkit train` build (Embedding with mask_zero and
word-pair buckets, LSTM and Bidirectional layers, max/mean/maxmean pooling or the final states,
Dense layers; dropout is the identity at inference). Anything else is refused with one line that
names it. `examples/onnx_predict.py` labels texts with only numpy, onnxruntime and these files.

    >>> export_onnx("runs/m", "runs/m-onnx")     # doctest: +SKIP
    PosixPath('runs/m-onnx')
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstmkit.atomic import sha256, write_bytes, write_json
from lstmkit.errors import LstmkitError
from lstmkit.io import output_folder
from lstmkit.io.onnx_graph import INPUT, OPSET, OUTPUT, GraphBuilder
from lstmkit.nn import layers as L
from lstmkit.nn.model import load_model
from lstmkit.version import __version__

ONNX_FILE, EXPORT_FILE = "model.onnx", "export.json"
EXPORT_FORMAT = 1
SUPPORTED = "Embedding(mask_zero=True) -> LSTM/Bidirectional layers -> pooling or final states -> Dense layers"


def export_onnx(model_dir, out, *, overwrite=False):
    """Write `out` (see the module's docstring) from the model directory `model_dir`; returns `out`.

    An `out` that holds an export is replaced only with `overwrite`; anything else there (the
    user's files, a model directory) is refused, and nothing is written.
    """
    model = load_model(model_dir)
    _check_vectorizer(model, model_dir)
    graph = onnx_model(model, where=str(model_dir))
    out = Path(out)
    with (
        output_folder.claim_output(out, overwrite=overwrite, kind="onnx"),
        output_folder.staged_directory(out, kind="onnx") as tmp,
    ):
        write_bytes(tmp / ONNX_FILE, graph.SerializeToString())
        model.vectorizer.save(tmp)
        write_json(tmp / EXPORT_FILE, _export_config(model, model_dir, tmp))
    return out


def onnx_model(model, where="the model"):
    """The `onnx.ModelProto` that computes `model.predict`'s probabilities (with the model's
    temperature) from right-padded ids; checked by onnx.checker. An ensemble's graph holds every
    member and averages their probabilities. Raises LstmkitError, naming the layer, for a model
    whose layers do not export."""
    g, layers = GraphBuilder(), model.layers
    x = g.mean([_member(g, layers, params, where) for params in model.members])
    temperature = model.temperature
    if temperature != 1.0:
        last = layers[-1]
        if last.activation not in ("sigmoid", "softmax"):
            _refuse(len(layers) - 1, last, where, "a temperature needs probabilities (sigmoid or softmax) to divide")
        x = g.calibrated(x, temperature, binary=model.n_outputs == 1)
    doc = f"lstmkit {__version__}: ids (B, T) int64, 0-padded on the right -> {OUTPUT} (B, {model.n_outputs})"
    return g.finish(x, n_outputs=model.n_outputs, doc=doc)


def _member(g, layers, member_params, where):
    """One set of weights through the layers, in graph g: the name of its probabilities (B, K)."""
    x, kind = None, "ids"  # kind: what x holds, "ids", "sequence" or "vector"
    for index, (layer, params) in enumerate(zip(layers, member_params)):
        if isinstance(layer, L.Dropout):  # Dropout, SpatialDropout1D, WordDropout: identity at inference
            continue
        _require(kind, _NEEDS.get(type(layer)), index, layer, where)
        if isinstance(layer, L.Embedding):
            x, kind = _embedding(g, layer, params, index, where), "sequence"
        elif isinstance(layer, (L.LSTM, L.Bidirectional)):
            x, kind = _recurrent(g, x, layer, params, index, where)
        elif isinstance(layer, tuple(L.POOLINGS.values())):
            pooled = {L.GlobalMaxPool: "max", L.GlobalAveragePool: "mean", L.MaxMeanPool: "maxmean"}
            x, kind = g.pool(x, pooled[type(layer)]), "vector"
        elif isinstance(layer, L.Dense):
            x = g.dense(x, np.asarray(params["W"]), np.asarray(params["b"]), layer.activation)
    return x


# What each layer reads: token ids, a sequence (T, B, F), or one vector per text (B, F).
_NEEDS = {
    L.Embedding: "ids",
    L.LSTM: "sequence",
    L.Bidirectional: "sequence",
    L.GlobalMaxPool: "sequence",
    L.GlobalAveragePool: "sequence",
    L.MaxMeanPool: "sequence",
    L.Dense: "vector",
}
_WHAT = {"ids": "token ids", "sequence": "a sequence (one vector per token)", "vector": "one vector per text"}


def _refuse(index, layer, where, why):
    raise LstmkitError(
        f"{where} cannot be exported to ONNX: layer {index} ({type(layer).__name__}) {why}; export takes {SUPPORTED}"
    )


def _require(kind, needs, index, layer, where):
    if needs is None:
        _refuse(index, layer, where, "has no ONNX form in lstmkit")
    if kind != needs:
        _refuse(index, layer, where, f"reads {_WHAT[needs]} but gets {_WHAT[kind]}")


def _embedding(g, layer, params, index, where):
    if not layer.mask_zero:
        _refuse(index, layer, where, "has mask_zero=False, so padding would be read as words")
    if layer.input_dim >= 2**30:
        _refuse(index, layer, where, f"has {layer.input_dim} rows; the in-graph word-pair hash is exact below 2^30 ids")
    pairs = np.asarray(params["bigram_table"]) if layer.bigram_buckets else None
    return g.embedding(np.asarray(params["table"]), pairs)


def _recurrent(g, x, layer, params, index, where):
    """An LSTM or Bidirectional layer: (its output, "sequence" or "vector")."""
    lstm = layer.layer if isinstance(layer, L.Bidirectional) else layer
    if lstm.reverses_time:
        _refuse(index, layer, where, "has go_backwards with return_sequences (its output runs last step first)")
    if lstm.return_state:
        _refuse(index, layer, where, "has return_state")
    numpy_params = _as_numpy(params)
    if isinstance(layer, L.Bidirectional):
        directions, merge = [numpy_params["forward"], numpy_params["backward"]], layer.merge_mode
    else:
        directions, merge = [numpy_params], "concat"
    y = g.lstm(x, directions, reverse=lstm.go_backwards, sequences=lstm.return_sequences, merge_mode=merge)
    return y, "sequence" if lstm.return_sequences else "vector"


def _as_numpy(tree):
    return {k: _as_numpy(v) for k, v in tree.items()} if isinstance(tree, dict) else np.asarray(tree, np.float32)


def _check_vectorizer(model, where):
    """The example's vectorizer reads the built-in modes only: whitespace split, no n-grams."""
    v = model.vectorizer
    if v is None:
        raise LstmkitError(f"{where} is a model over token ids, with no vocabulary; export needs a text model")
    if callable(v.standardize) or v.split != "whitespace" or v.ngrams is not None:
        raise LstmkitError(
            f"{where} cannot be exported to ONNX: its TextVectorizer ({v.get_config()}) is not the built-in one "
            "(a standardize mode, split='whitespace', no ngrams) that examples/onnx_predict.py reproduces"
        )


def _tokens_read(model):
    """How many tokens of a text prediction reads, as `Sequential._ids` cuts them; 0 for all."""
    limit = model.vectorizer.output_sequence_length if model.inference_length is None else model.inference_length
    return int(limit or 0)


def _export_config(model, model_dir, folder):
    """export.json: what a reader of model.onnx needs besides the graph, and the files' SHA-256."""
    thresholds = model.thresholds
    return {
        "format_version": EXPORT_FORMAT,
        "kind": output_folder.ONNX_KIND,
        "lstmkit_version": __version__,
        "source": str(model_dir),
        "model_file": ONNX_FILE,
        "opset": OPSET,
        "input": INPUT,
        "output": OUTPUT,
        "class_names": None if model.class_names is None else list(model.class_names),  # None: class indices
        "binary": model.n_outputs == 1,
        "max_length": _tokens_read(model),
        "temperature": model.temperature,
        # a multi-label model: K sigmoids, and the label set is every class with p >= its threshold
        "thresholds": None if thresholds is None else dict(zip(model.class_names, map(float, thresholds))),
        "files": {p.name: sha256(p) for p in sorted(Path(folder).iterdir()) if p.is_file()},
    }
