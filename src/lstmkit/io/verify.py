"""What a model directory's files must be before anything is loaded from them.

config.json: a JSON object with known keys of known types, a format version lstmkit knows, file
names inside the folder, and (from format 2) its own SHA-256 over its canonical JSON without
that field. The weights: the names, dtypes and shapes in the safetensors header, compared with
what the config's layers need before a byte of any tensor is read, so that an extra tensor of
2 GiB costs a header read, not 2 GiB of memory.

>>> digest = config_digest({"format_version": 2, "files": {}})
>>> config_digest({"format_version": 2, "files": {}, "config_sha256": digest}) == digest
True
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from lstmkit.errors import LstmkitError

FORMAT_VERSION = 2  # 2: config.json carries config_sha256; format 1 (written before it) still loads
DIGEST_KEY = "config_sha256"
MAX_HEADER = 16 * 2**20  # a safetensors header this long is not one lstmkit wrote

# The keys config.json may hold, per kind of directory, with the types their values may have.
_OPTIONAL = (dict, type(None))
CONFIG_KEYS = {
    "model": {
        "format_version": int, "lstmkit_version": str, "status": str, "model": dict, "has_vectorizer": bool,
        "train_config": _OPTIONAL, "files": dict, DIGEST_KEY: str, "kind": str,
    },
    "lstmkit-pretrained": {
        "format_version": int, "kind": str, "lstmkit_version": str, "config": dict, "corpus": dict, "files": dict,
        DIGEST_KEY: str,
    },
}  # fmt: skip
MODEL_KEYS = {"layers": list, "class_names": (list, type(None)), "loss": (str, type(None)), "inference_length": (int, type(None)), "members": int}  # fmt: skip
_DTYPES = {"F16", "BF16", "F32", "F64", "I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64", "BOOL"}


def config_digest(config: dict) -> str:
    """SHA-256 of the config's canonical JSON (sorted keys, no spaces) without its own digest."""
    body = {k: v for k, v in config.items() if k != DIGEST_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def check_config(config, path: Path) -> int:
    """The format version of a parsed config.json, once its version, file list and digest hold."""
    fix = "retrain or restore the model"
    if not isinstance(config, dict):
        raise LstmkitError(f"{path} is not an lstmkit config (a JSON object); {fix}")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise LstmkitError(f"{path} has no format_version; it is not an lstmkit model directory")
    if version < 1:
        raise LstmkitError(
            f"{path} has format_version {version}, which no lstmkit writes (1 to {FORMAT_VERSION}); {fix}"
        )
    if version > FORMAT_VERSION:
        raise LstmkitError(
            f"{path.parent} uses model format {version}, newer than this lstmkit supports ({FORMAT_VERSION}); upgrade lstmkit"
        )
    if version >= 2 and config.get(DIGEST_KEY) != config_digest(config):
        raise LstmkitError(f"{path} is corrupted or was edited (its {DIGEST_KEY} does not match); {fix}")
    files = config.get("files")
    if not isinstance(files, dict) or not files:
        raise LstmkitError(f"{path} lists no files to verify; {fix}")
    if not all(plain_name(n) and isinstance(d, str) for n, d in files.items()):
        raise LstmkitError(f"{path} lists its files wrongly (names inside the folder only); {fix}")
    return version


def check_keys(config: dict, kind: str, path: Path) -> None:
    """Refuse keys a `kind` directory's config.json never holds, and values of the wrong type."""
    _check_types(config, CONFIG_KEYS[kind], path, "")
    if kind == "model":
        _check_types(config["model"], MODEL_KEYS, path, "model.")
        names = config["model"].get("class_names")
        if names is not None and not all(isinstance(n, str) for n in names):
            raise LstmkitError(f"{path}: model.class_names must be a list of strings; retrain or restore the model")


def _check_types(mapping: dict, allowed: dict, path: Path, prefix: str) -> None:
    for key, value in mapping.items():
        if key not in allowed:
            raise LstmkitError(
                f"{path} holds an unknown key '{prefix}{key}'; it was not written by this lstmkit (upgrade it, or retrain)"
            )
        if not isinstance(value, allowed[key]) or (isinstance(value, bool) and allowed[key] is int):
            raise LstmkitError(
                f"{path}: '{prefix}{key}' is a {type(value).__name__}, which lstmkit never writes there; retrain or restore the model"
            )


def plain_name(name) -> bool:
    """A file name inside the directory: no folders, no '..', not absolute."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name


def check_tensor_header(path: Path, shapes: dict[str, tuple], optional=None, at_most=None) -> None:
    """Refuse a safetensors file whose tensors are not exactly `shapes` ({name: shape}), from its header.

    `optional`: more {name: shape} that may be absent; `at_most`: more {name: shape} that may be
    absent, or present with at most as many dimensions, each no larger than the bound's (arrays
    whose length the data decides, bounded so that a hostile header cannot make lstmkit read
    gigabytes). The file starts with the header's length (8 bytes, little-endian) and the header,
    JSON: {name: {"dtype", "shape", "data_offsets": [begin, end]}}; nothing after it is read.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        if not 0 < length <= min(MAX_HEADER, size - 8):
            raise LstmkitError(f"{path} is not a safetensors file lstmkit wrote (its header is {length} bytes); retrain or restore the model")  # fmt: skip
        try:
            header = json.loads(f.read(length))
        except (ValueError, RecursionError):
            header = None
    if not isinstance(header, dict):
        raise LstmkitError(f"{path} has a damaged safetensors header; retrain or restore the model")
    header.pop("__metadata__", None)
    optional = optional or {}
    at_most = at_most or {}
    extra = sorted(set(header) - set(shapes) - set(optional) - set(at_most))
    missing = sorted(set(shapes) - set(header))
    if extra:
        raise LstmkitError(
            f"{path} holds a tensor {extra[0]!r} that the config's layers do not have; "
            "the weights and config are from different models"
        )
    if missing:
        raise LstmkitError(
            f"the weights file has no tensor {missing[0]!r}; the model directory does not match its config"
        )
    expected_shapes = {**{n: s for n, s in optional.items() if n in header}, **shapes}
    for name, entry in header.items():
        if not isinstance(entry, dict) or entry.get("dtype") not in _DTYPES:
            raise LstmkitError(f"{path}: tensor {name!r} has no dtype lstmkit reads; retrain or restore the model")
    for name, expected in expected_shapes.items():
        entry = header[name]
        if not isinstance(entry.get("shape"), list) or tuple(entry["shape"]) != tuple(expected):
            raise LstmkitError(f"tensor {name!r} has shape {tuple(entry.get('shape') or ())} but the config expects {tuple(expected)}")  # fmt: skip
    for name, bound in at_most.items():
        shape = header[name].get("shape") if name in header else None
        if shape is not None and not (
            isinstance(shape, list)
            and 1 <= len(shape) <= len(bound)
            and all(isinstance(s, int) and 0 <= s <= b for s, b in zip(shape, bound))
        ):
            raise LstmkitError(f"tensor {name!r} has shape {tuple(shape or ())}, more than the data allows, at most {tuple(bound)}")  # fmt: skip
