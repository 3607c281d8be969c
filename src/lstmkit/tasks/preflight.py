"""Checks before the first epoch of a run: room on the disk for a checkpoint, and that --resume
reads the data the interrupted run trained on.

>>> from lstmkit.data.dataset import Dataset
>>> a = Dataset(["good", "bad"], np.array([1, 0]), ["neg", "pos"])
>>> data_digest(a) == data_digest(Dataset(["good", "bad"], np.array([1, 0]), ["neg", "pos"]))
True
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import jax
import numpy as np

from lstmkit.errors import LstmkitError


def check_room(out, params):
    """Refuse to start an epoch whose checkpoint the disk cannot hold: the weights, the optimizer's
    two moments, the averaged and the best weights (5 x the parameters), the vocabulary, a margin."""
    out = Path(out)
    need = 5 * sum(a.nbytes for a in jax.tree.leaves(params)) + (8 << 20)
    free = shutil.disk_usage(out.parent).free
    if free < need:
        raise LstmkitError(
            f"the disk of {out.parent} has {free / 2**20:.0f} MiB free; a checkpoint of this model needs about "
            f"{need / 2**20:.0f} MiB; free some space or choose another --out"
        )


def data_digest(train) -> str:
    """SHA-256 of the training texts, labels and classes, kept in the checkpoint so that --resume
    can tell other data (or another split of it) from the interrupted run's."""
    digest = hashlib.sha256(json.dumps(list(train.class_names)).encode())
    if hasattr(train.texts, "digest_parts"):  # a token file's rows (`--stream`): its key and which rows
        for part in train.texts.digest_parts():
            digest.update(part)
    else:
        for text in train.texts:
            digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
    digest.update(np.asarray(train.labels, np.int64).tobytes())
    return digest.hexdigest()
