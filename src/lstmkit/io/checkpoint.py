"""The model directory: config, vocabulary, weights and checksums, written atomically.

A model directory holds:
    config.json            format version, layers, classes, training config, file checksums
    vocabulary.txt,
    vectorizer.json        the TextVectorizer (when the model takes text)
    weights.safetensors    parameters by name, e.g. "2.forward.W_h" (no pickle anywhere)
    weights-member2.safetensors, ...
                           an ensemble's other members (config "model.members" > 1), named alike
    history.json           per-epoch training metrics
    metrics.json           the final test metrics (when known)
    training_state.safetensors, training_state.json
                           optimizer state, epoch and early-stopping state, for --resume

Writes build the whole directory beside the target and swap it in with renames
(`lstmkit.io.output_folder`), so a crash or Ctrl-C leaves either the old directory or the new one,
never a half-written model. Loading checks the format version and every file's SHA-256 against
config.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from lstmkit.atomic import sha256, write_json
from lstmkit.data.text import TextVectorizer
from lstmkit.errors import LstmkitError
from lstmkit.io.output_folder import resolve_dir, staged_directory
from lstmkit.io.verify import DIGEST_KEY, FORMAT_VERSION, check_config, check_keys, check_tensor_header, config_digest
from lstmkit.version import __version__

WEIGHTS = "weights.safetensors"
MAX_MEMBERS = 64  # an ensemble's members; a config.json claiming more was not written by lstmkit
STATE = "training_state.safetensors"


def flatten_params(tree, prefix="", leaf=np.asarray):
    """Nested dicts/lists of arrays -> {"0.table": array, "2.forward.W_x": array, ...} (each leaf through `leaf`)."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, (list, tuple)) else None
    if items is None:
        return {prefix[:-1]: leaf(tree)}
    out = {}
    for k, v in items:
        out.update(flatten_params(v, f"{prefix}{k}.", leaf))
    return out


def load_weights(path, template):
    """The tensors of a safetensors file as `template`'s pytree, once the file's header shows
    exactly the template's names and shapes (nothing is read before that)."""
    from safetensors.numpy import load_file

    check_tensor_header(Path(path), flatten_params(template, leaf=lambda a: tuple(a.shape)))
    return unflatten_like(template, load_file(path))


def member_weights(k):
    """The weights file of an ensemble's member k (0: the model's own, `WEIGHTS`)."""
    return WEIGHTS if k == 0 else f"weights-member{k + 1}.safetensors"


def n_members(config, directory):
    """How many members a model directory's config.json says it holds (1 before ensembles existed)."""
    members = config["model"].get("members", 1)
    if not 1 <= members <= MAX_MEMBERS:
        raise LstmkitError(
            f"{directory}/config.json says the model has {members} members (1 to {MAX_MEMBERS}); retrain or restore the model"
        )
    for k in range(members):
        if member_weights(k) not in config.get("files", {}):
            raise LstmkitError(
                f"{directory} is incomplete: {member_weights(k)} is missing; retrain or restore the model"
            )
    return members


def write_config(folder, config):
    """config.json in `folder`, vouching for every other file there and for itself (`config_sha256`)."""
    config = {"format_version": FORMAT_VERSION, **config, "files": file_checksums(folder)}
    write_json(Path(folder) / "config.json", {**config, DIGEST_KEY: config_digest(config)})


def unflatten_like(template, flat, prefix=""):
    """Fill a template pytree (from model.build) with arrays from `flat`, checking shapes."""
    if isinstance(template, dict):
        return {k: unflatten_like(v, flat, f"{prefix}{k}.") for k, v in template.items()}
    if isinstance(template, (list, tuple)):
        return type(template)(unflatten_like(v, flat, f"{prefix}{k}.") for k, v in enumerate(template))
    name = prefix[:-1]
    if name not in flat:
        raise LstmkitError(f"the weights file has no tensor {name!r}; the model directory does not match its config")
    if tuple(flat[name].shape) != tuple(template.shape):
        raise LstmkitError(
            f"tensor {name!r} has shape {tuple(flat[name].shape)} but the config expects {tuple(template.shape)}"
        )
    return jax.numpy.asarray(flat[name])


def file_checksums(folder):
    """{file name: SHA-256} of every file in a folder, for config.json to vouch for."""
    return {p.name: sha256(p) for p in sorted(Path(folder).iterdir()) if p.is_file()}


def save_model(
    model,
    directory,
    *,
    train_config=None,
    history=None,
    metrics=None,
    opt_state=None,
    training=None,
    best_params=None,
    arrays=None,
    members=None,
    status="complete",
):
    """Write the model directory atomically.

    Args:
        model: a built `Sequential`.
        train_config: the resolved configuration (preset + flags), saved for reproducibility.
        history, metrics: dicts saved as history.json and metrics.json.
        opt_state, training: optimizer state and a JSON-able dict (epoch, best, ...) for --resume.
        best_params: early stopping's best weights so far, kept with the optimizer state.
        arrays: more named arrays a resumed run needs (self-training's pseudo-labels), likewise.
        members: the weight sets to save as the ensemble's members, the first as the model's own
            (None: `model.members`); a checkpoint of an ensemble's later member holds the earlier.
        status: "complete", or "training" for a checkpoint of an unfinished run.
    """
    from safetensors.numpy import save_file

    if model.params is None:
        raise LstmkitError("the model has no weights to save; fit it first")
    members = model.members if members is None else members
    with staged_directory(directory) as tmp:
        for k, params in enumerate(members):
            save_file(flatten_params(params), tmp / member_weights(k))
        if model.vectorizer is not None:
            model.vectorizer.save(tmp)
        if history is not None:
            write_json(tmp / "history.json", history)
        if metrics is not None:
            write_json(tmp / "metrics.json", metrics)
        if opt_state is not None:
            leaves = jax.tree.leaves(opt_state)
            state = {f"opt.{k}": np.asarray(a) for k, a in enumerate(leaves)}
            if best_params is not None:
                state.update({f"best.{name}": a for name, a in flatten_params(best_params).items()})
            state.update({f"extra.{name}": np.asarray(a) for name, a in (arrays or {}).items()})
            save_file(state, tmp / STATE)
            write_json(tmp / "training_state.json", training or {})
        config = {
            "lstmkit_version": __version__,
            "status": status,
            "model": {**model.get_config(), "members": len(members)},
            "has_vectorizer": model.vectorizer is not None,
            "train_config": train_config,
        }
        write_config(tmp, config)


def read_config(directory):
    """config.json of a model directory, with its version and checksums verified."""
    directory = resolve_dir(directory)
    if not directory.is_dir():
        raise LstmkitError(
            f"model directory {directory} does not exist; train one with `lstmkit train --out {directory}`"
        )
    path = directory / "config.json"
    if not path.exists():
        raise LstmkitError(
            f"{directory} is not a complete model directory (no config.json); train again or pass the right --out folder"
        )
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LstmkitError(
            f"{path} is corrupted ({e.msg if hasattr(e, 'msg') else e}); retrain or restore the model"
        ) from None
    check_config(config, path)
    files = config["files"]
    for name, digest in files.items():
        file = directory / name
        if not file.exists():
            raise LstmkitError(f"{directory} is incomplete: {name} is missing; retrain or restore the model")
        if sha256(file) != digest:
            raise LstmkitError(f"{directory}/{name} is corrupted (checksum mismatch); retrain or restore the model")
    return directory, config


def read_model(directory):
    """(directory, config, TextVectorizer or None) of a verified model directory;
    `lstmkit.nn.model.load_model` builds the model and reads its weights with `load_weights`."""
    directory, config = read_config(directory)
    if config.get("kind", "model") != "model":
        raise LstmkitError(
            f"{directory} holds a pretrained language model, not a classifier; train one from it with "
            f"`lstmkit train --pretrained {directory}`"
        )
    if not isinstance(config.get("model"), dict) or not isinstance(config["model"].get("layers"), list):
        raise LstmkitError(f"{directory}/config.json has no model layers; retrain or restore the model")
    check_keys(config, "model", directory / "config.json")
    vectorizer = TextVectorizer.load(directory) if config.get("has_vectorizer") else None
    return directory, config, vectorizer


def load_training_state(directory, opt_state_template, params_template, arrays_at_most=None):
    """(opt_state, training dict, history, best params or None, {name: array} saved as `arrays`)
    of an unfinished run, for --resume.

    arrays_at_most: {name: largest shape} of the `arrays` a run may have saved; any other is
    refused, from the file's header, before anything is read."""
    from safetensors.numpy import load_file

    directory, config = read_config(directory)
    if not (directory / STATE).exists():
        raise LstmkitError(f"{directory} has no training state to resume from; train without --resume")
    leaves, treedef = jax.tree.flatten(opt_state_template)
    opt_shapes = {f"opt.{k}": tuple(np.shape(a)) for k, a in enumerate(leaves)}
    best_shapes = {f"best.{n}": s for n, s in flatten_params(params_template, leaf=lambda a: tuple(a.shape)).items()}
    try:
        extra = {f"extra.{name}": bound for name, bound in (arrays_at_most or {}).items()}
        check_tensor_header(directory / STATE, opt_shapes, optional=best_shapes, at_most=extra)
    except LstmkitError as e:
        raise LstmkitError(
            f"the training state in {directory} does not match this configuration ({e}); resume with the same flags"
        ) from None
    flat = load_file(directory / STATE)
    if sum(k.startswith("opt.") for k in flat) != len(leaves):
        raise LstmkitError(
            f"the optimizer state in {directory} does not match this configuration; resume with the same flags"
        )
    opt_state = jax.tree.unflatten(treedef, [jax.numpy.asarray(flat[f"opt.{k}"]) for k in range(len(leaves))])
    best = {k[len("best.") :]: a for k, a in flat.items() if k.startswith("best.")}
    best_params = unflatten_like(params_template, best) if best else None
    training = json.loads((directory / "training_state.json").read_text())
    history = json.loads((directory / "history.json").read_text()) if (directory / "history.json").exists() else None
    arrays = {k[len("extra.") :]: a for k, a in flat.items() if k.startswith("extra.")}
    return opt_state, training, history, best_params, arrays
