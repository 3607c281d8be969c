"""The pretrained directory that `lstmkit pretrain` writes, and how a classifier takes its weights.

The directory (written atomically, as a model directory is):
    config.json          kind "lstmkit-pretrained", settings, corpus counts, file checksums
    vocabulary.txt, vectorizer.json    the TextVectorizer (adapted on the 98% training texts)
    weights.safetensors  embedding.table (V, E); lstm.{forward,backward}.{W_x,W_h,b};
                         head.{forward,backward}.{W (H, K), b (K,)}
    history.json         per epoch: sampled training loss, held-out loss and perplexity (2%)

`install_pretrained` copies the vocabulary, the embedding and the first LSTM layer into a built
classifier; `check_settings` refuses a classifier configuration whose sizes differ.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp

from lstmkit.atomic import write_json
from lstmkit.data.text import TextVectorizer
from lstmkit.errors import LstmkitError
from lstmkit.io import checkpoint, output_folder
from lstmkit.io.verify import check_keys
from lstmkit.nn import layers as L
from lstmkit.tasks.lm import init_lm
from lstmkit.tasks.presets import LMConfig
from lstmkit.version import __version__

KIND = output_folder.PRETRAINED_KIND


class Pretrained(NamedTuple):
    """A loaded pretrained directory: vectorizer, params (as `init_lm`), LMConfig, history, corpus."""

    vectorizer: object
    params: dict
    config: LMConfig
    history: dict
    corpus: dict
    directory: Path


def save_pretrained(directory, params, vectorizer, config: LMConfig, history, corpus):
    """Write the pretrained directory atomically: build it beside the target, then swap it in."""
    from safetensors.numpy import save_file

    with output_folder.staged_directory(directory, kind="pretrained") as tmp:
        save_file(checkpoint.flatten_params(params), tmp / checkpoint.WEIGHTS)
        vectorizer.save(tmp)
        write_json(tmp / "history.json", history)
        meta = {"kind": KIND, "lstmkit_version": __version__, "config": asdict(config), "corpus": corpus}
        checkpoint.write_config(tmp, meta)


def load_pretrained(directory) -> Pretrained:
    """Read a pretrained directory, verifying its format, kind, checksums and tensor shapes."""
    path = output_folder.resolve_dir(directory)
    if not path.is_dir():
        raise LstmkitError(
            f"pretrained directory {directory} does not exist; write one with `lstmkit pretrain --out {directory}`"
        )
    if not (path / "config.json").exists():
        raise LstmkitError(
            f"{directory} is not a pretrained directory (no config.json); pass the --out folder of `lstmkit pretrain`"
        )
    path, meta = checkpoint.read_config(path)
    if meta.get("kind") != KIND:
        raise LstmkitError(
            f"{directory} is a model directory, not a pretrained one; pass the --out folder of `lstmkit pretrain`"
        )
    check_keys(meta, KIND, path / "config.json")
    try:
        config = LMConfig(**meta["config"])
        n_outputs = int(meta["corpus"]["output_vocab"])
        template = jax.eval_shape(lambda k: init_lm(k, config, n_outputs), jax.random.key(0))
    except (KeyError, TypeError, ValueError) as e:  # a config.json edited or written by something else
        raise LstmkitError(
            f"{path}/config.json describes a language model lstmkit cannot build ({type(e).__name__}: {e}); pretrain again"
        ) from None
    params = checkpoint.load_weights(path / checkpoint.WEIGHTS, template)
    history = json.loads((path / "history.json").read_text())
    return Pretrained(TextVectorizer.load(path), params, config, history, meta["corpus"], path)


def check_settings(pretrained: Pretrained, settings: dict):
    """Refuse a classifier config (a resolved preset) whose sizes differ from the pretrained ones."""
    pre = pretrained.config
    for key in ("max_tokens", "embedding_dim", "lstm_units", "bidirectional", "standardize", "strip_html"):
        if key in settings and settings[key] != getattr(pre, key):
            flag = key.replace("_", "-")
            hint = (
                f"--{flag} {getattr(pre, key)}"
                if not isinstance(getattr(pre, key), bool)
                else f"--{'' if getattr(pre, key) else 'no-'}{flag}"
            )
            raise LstmkitError(
                f"the pretrained weights in {pretrained.directory} have {key}={getattr(pre, key)!r} but the classifier has {settings[key]!r}; "
                f"train with {hint}, or pretrain again with the classifier's sizes"
            )


def install_pretrained(model, pretrained):
    """Put the pretrained vocabulary, embedding and first LSTM layer's weights into a built classifier.

    model: a `Sequential` that starts with a TextVectorizer and an Embedding, with an LSTM or
    Bidirectional layer after it; its params are replaced (the vectorizer's vocabulary too).
    pretrained: a directory or a loaded `Pretrained`. Sizes must match exactly.

    >>> install_pretrained(model, "runs/lm")                  # doctest: +SKIP
    """
    pre = pretrained if isinstance(pretrained, Pretrained) else load_pretrained(pretrained)
    _check_text_settings(model, pre)
    emb, rec = _embedding_and_recurrent(model)
    if model.params is None:
        model.build()
    table = pre.params["embedding"]["table"]
    if tuple(table.shape) != tuple(model.params[emb]["table"].shape):
        (V, E), (v, e) = table.shape, model.params[emb]["table"].shape
        raise LstmkitError(
            f"the pretrained embedding is {V} tokens x {E} dims but the classifier's is {v} x {e}; train with --max-tokens {V} --embedding-dim {E}"
        )
    params = list(model.params)
    # The word vectors are pretrained; the word-pair vectors (bigram_table), which the language
    # model does not have, keep their fresh initialisation.
    # Copies: training donates its weights' buffers, and the next model (an ensemble's next
    # member) takes the same pretrained weights again.
    params[emb] = {**model.params[emb], "table": jnp.array(table)}
    params[rec] = jax.tree.map(jnp.array, _recurrent_weights(model.layers[rec], pre))
    model.vectorizer.set_vocabulary(pre.vectorizer.vocabulary)
    return model.set_weights(params)


def _check_text_settings(model, pre: Pretrained):
    """Refuse a classifier without a vectorizer, or whose vectorizer cuts text differently."""
    if model.vectorizer is None:
        raise LstmkitError(
            "this classifier takes token ids; pretrained weights need one that starts with a TextVectorizer"
        )
    mine, theirs = model.vectorizer.get_config(), pre.vectorizer.get_config()
    for key in ("standardize", "split", "ngrams", "strip_html"):
        if mine[key] != theirs[key]:
            raise LstmkitError(
                f"the pretrained vocabulary was built with {key}={theirs[key]!r} but the classifier's vectorizer has {mine[key]!r}; use the same text settings"
            )


def _embedding_and_recurrent(model):
    """The indices of the classifier's Embedding and of the first LSTM or Bidirectional after it."""
    emb = next((i for i, layer in enumerate(model.layers) if isinstance(layer, L.Embedding)), None)
    rec = next(
        (
            i
            for i, layer in enumerate(model.layers)
            if isinstance(layer, (L.LSTM, L.Bidirectional)) and emb is not None and i > emb
        ),
        None,
    )
    if emb is None or rec is None:
        raise LstmkitError(
            "the classifier needs an Embedding followed by an LSTM or Bidirectional layer to take pretrained weights"
        )
    return emb, rec


def _recurrent_weights(layer, pre: Pretrained):
    """The pretrained LM's LSTM params for this layer (both directions, or the one it reads), checked."""
    bidirectional = isinstance(layer, L.Bidirectional)
    if bidirectional != pre.config.bidirectional:
        raise LstmkitError(
            f"the pretrained LSTM is {'bi' if pre.config.bidirectional else 'uni'}directional but the classifier's first LSTM layer is "
            f"{'bi' if bidirectional else 'uni'}directional; train with --{'' if pre.config.bidirectional else 'no-'}bidirectional"
        )
    units = (layer.layer if bidirectional else layer).units
    if units != pre.config.lstm_units:
        raise LstmkitError(
            f"the pretrained LSTM has {pre.config.lstm_units} units but the classifier's first LSTM layer has {units}; train with --lstm-units {pre.config.lstm_units}"
        )
    lstm = pre.params["lstm"]
    if not bidirectional and layer.go_backwards and "backward" not in lstm:
        raise LstmkitError(
            "the classifier's first LSTM reads backwards but the pretrained LM has only a forward direction; pretrain with --bidirectional"
        )
    if bidirectional:
        return {"forward": dict(lstm["forward"]), "backward": dict(lstm["backward"])}
    return dict(lstm["backward" if layer.go_backwards else "forward"])
