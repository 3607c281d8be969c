"""The model directory: config, vocabulary, weights and checksums, written atomically.

A model directory holds:
    config.json            format version, layers, classes, training config, file checksums
    vocabulary.txt,
    vectorizer.json        the TextVectorizer (when the model takes text)
    weights.safetensors    parameters by name, e.g. "2.forward.W_h" (no pickle anywhere)
    history.json           per-epoch training metrics
    metrics.json           the final test metrics (when known)
    training_state.safetensors, training_state.json
                           optimizer state, epoch and early-stopping state, for --resume

Writes build the whole directory beside the target and swap it in with renames, so a crash or
Ctrl-C leaves either the old directory or the new one, never a half-written model. Loading
checks the format version and every file's SHA-256 against config.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import jax
import numpy as np

from lstmkit.atomic import fsync_dir, sha256, write_json
from lstmkit.data.text import TextVectorizer
from lstmkit.errors import LstmkitError
from lstmkit.io.verify import DIGEST_KEY, FORMAT_VERSION, check_config, check_keys, check_tensor_header, config_digest
from lstmkit.version import __version__

PRETRAINED_KIND = "lstmkit-pretrained"  # config.json's "kind" in a `lstmkit pretrain` directory
WEIGHTS = "weights.safetensors"
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


def directory_kind(directory) -> str | None:
    """What a path holds: "absent", "empty", "model", "pretrained" (an lstmkit directory, by its
    config.json), or None for anything else, such as the user's own files."""
    directory = Path(directory)
    if not directory.exists() and not directory.is_symlink():
        return "absent"
    if not directory.is_dir() or directory.is_symlink():
        return None
    if not any(directory.iterdir()):
        return "empty"
    try:
        config = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(config, dict)
        or not isinstance(config.get("format_version"), int)
        or isinstance(config["format_version"], bool)
    ):
        return None
    kind = config.get("kind", "model")
    return {"model": "model", PRETRAINED_KIND: "pretrained"}.get(kind)


def _swap_in(tmp_dir: Path, target: Path, kind: str):
    """Replace target by tmp_dir with renames; the old one survives as target.old until the end.

    Only a directory of the same kind (or an empty one) is ever replaced: anything else at the
    target is the user's, and is refused before anything moves.
    """
    if directory_kind(target) not in ("absent", "empty", kind):
        raise LstmkitError(
            f"{target} exists and is not an lstmkit {kind} directory; lstmkit never replaces it: choose a new or empty folder"
        )
    old = target.with_name(target.name + ".old")
    if old.exists():
        if directory_kind(old) not in ("empty", kind):
            raise LstmkitError(f"{old} is in the way and is not an lstmkit {kind} directory; move it away")
        shutil.rmtree(old)
    if target.exists():
        os.rename(target, old)
    os.rename(tmp_dir, target)
    fsync_dir(target.parent)
    if old.exists():
        shutil.rmtree(old)


@contextmanager
def staged_directory(directory, kind="model"):
    """Build a directory beside `directory`, then swap it in with renames.

    Yields the temporary folder to fill. An exception (Ctrl-C included) removes it and leaves the
    old directory as it was. Write config.json last, with `file_checksums` of the rest. `kind`
    is what the target may already hold ("model" or "pretrained"); anything else is refused.
    """
    target = Path(directory)
    if directory_kind(target) not in ("absent", "empty", kind):
        raise LstmkitError(
            f"{target} exists and is not an lstmkit {kind} directory; lstmkit never replaces it: choose a new or empty folder"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        _swap_in(tmp, target, kind)
    except OSError as e:  # a full disk, say: the previous version is still in place
        shutil.rmtree(tmp, ignore_errors=True)
        raise LstmkitError(
            f"could not write {target} ({e.strerror or e}); what it held before (the last checkpoint, if any) is intact"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_interrupted_save(target, kind="model"):
    """Finish or undo what a killed save left beside `target`; returns a line saying what, or None.

    A save renames target -> target.old, then the new folder -> target, then deletes target.old.
    Killed between the renames, target is missing and target.old holds the last good version:
    it is renamed back. target.old beside a present target, and .target.tmp-PID folders of
    processes that no longer run, are leftovers and are removed (only if they are lstmkit's).
    """
    target = Path(target)
    old = target.with_name(target.name + ".old")
    said = None
    if directory_kind(old) in ("empty", kind):
        if directory_kind(target) == "absent":
            os.rename(old, target)
            said = f"recovered {target} from {old.name} (a save was interrupted between its two renames)"
        else:
            shutil.rmtree(old)
    if target.parent.is_dir():
        for tmp in target.parent.glob(f".{target.name}.tmp-*"):
            pid = tmp.name.rsplit("-", 1)[-1]
            if tmp.is_dir() and not tmp.is_symlink() and pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(tmp, ignore_errors=True)
    return said


@contextmanager
def output_lock(target):
    """Hold an exclusive lock on the output folder `target` for as long as the block runs.

    The lock is a file `.NAME.lock` beside it (flock, released by the kernel if the process
    dies); a second writer gets an LstmkitError at once instead of racing the first.
    """
    import fcntl

    target = Path(target)
    here = Path.cwd().resolve()
    if target.resolve() == here or target.resolve() in here.parents:
        raise LstmkitError(
            f"--out {target} is the folder you are working in (or one above it); name a new folder, e.g. --out runs/model"
        )
    lock = target.with_name(f".{target.name}.lock")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LstmkitError(f"cannot create {target.parent} ({e.strerror}); choose a writable output folder") from None
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise LstmkitError(
                f"cannot write in {target.parent} ({e.strerror}); choose a writable output folder"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise LstmkitError(
                f"another lstmkit process is writing {target} (it holds {lock}); wait for it to finish, or choose another folder"
            ) from None
        try:  # the holder before us may have unlinked the file after we opened it: lock the live one
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


def check_output(target, *, overwrite=False, resume=False, kind="model"):
    """Refuse an output folder whose contents a run would lose; returns its kind.

    New, empty: fine. An lstmkit directory of this kind: replaced only with `overwrite`, an
    interrupted run continued with `resume`. Anything else (the user's files, a file): refused,
    whatever the flags say.
    """
    target = Path(target)
    found = directory_kind(target)
    if found is None:
        what = (
            "a file" if target.exists() and not target.is_dir() else f"a folder that is not an lstmkit {kind} directory"
        )
        raise LstmkitError(f"--out {target} is {what}; lstmkit never replaces it: choose a new or empty folder")
    if found not in ("absent", "empty") and found != kind:
        raise LstmkitError(
            f"--out {target} holds an lstmkit {found} directory, not a {kind} one; choose another folder"
        )
    if resume:
        if found in ("absent", "empty"):
            raise LstmkitError(f"{target} has no interrupted run to resume; train without --resume")
        return found
    if found == kind and not overwrite:
        status = _status(target)
        if status == "training":
            raise LstmkitError(
                f"{target} holds an interrupted run; continue it with --resume, replace it with --overwrite, or choose another --out"
            )
        raise LstmkitError(
            f"{target} already holds a trained {kind} directory; replace it with --overwrite, or choose another --out"
        )
    return found


def _status(directory):
    try:
        return json.loads((Path(directory) / "config.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def file_checksums(folder):
    """{file name: SHA-256} of every file in a folder, for config.json to vouch for."""
    return {p.name: sha256(p) for p in sorted(Path(folder).iterdir()) if p.is_file()}


def resolve_dir(directory) -> Path:
    """The model directory, or its previous version if a swap was interrupted mid-way."""
    directory = Path(directory)
    old = directory.with_name(directory.name + ".old")
    if not directory.exists() and old.exists():
        return old
    return directory


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
        status: "complete", or "training" for a checkpoint of an unfinished run.
    """
    from safetensors.numpy import save_file

    if model.params is None:
        raise LstmkitError("the model has no weights to save; fit it first")
    with staged_directory(directory) as tmp:
        save_file(flatten_params(model.params), tmp / WEIGHTS)
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
            "model": model.get_config(),
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


def load_training_state(directory, opt_state_template, params_template):
    """(opt_state, training dict, history, best params or None, {name: array} saved as `arrays`)
    of an unfinished run, for --resume."""
    from safetensors.numpy import load_file

    directory, config = read_config(directory)
    if not (directory / STATE).exists():
        raise LstmkitError(f"{directory} has no training state to resume from; train without --resume")
    leaves, treedef = jax.tree.flatten(opt_state_template)
    opt_shapes = {f"opt.{k}": tuple(np.shape(a)) for k, a in enumerate(leaves)}
    best_shapes = {f"best.{n}": s for n, s in flatten_params(params_template, leaf=lambda a: tuple(a.shape)).items()}
    try:
        check_tensor_header(directory / STATE, opt_shapes, optional=best_shapes, free_prefix="extra.")
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
