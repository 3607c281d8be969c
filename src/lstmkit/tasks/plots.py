"""Pictures drawn with matplotlib: training curves from a model directory's history.json, a
confusion matrix, and a reliability diagram."""

from __future__ import annotations

import json
from pathlib import Path

from lstmkit.atomic import write_with
from lstmkit.errors import LstmkitError
from lstmkit.io.output_folder import resolve_dir

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
PANELS = (
    "loss",
    "accuracy",
    "val_perplexity",
)  # a classifier's history has the first two, a pretrained LM's the first and last


def plot_history(model_dir, out=None):
    """Write the curves per epoch (loss, and accuracy or perplexity; train against validation) as a
    PNG, SVG or PDF by `out`'s suffix (default MODEL_DIR/curves.png); returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model_dir = resolve_dir(model_dir)
    out = Path(out) if out else model_dir / "curves.png"
    if out.is_dir():
        raise LstmkitError(f"cannot write {out}: it is a folder; give a file name such as {out / 'curves.png'}")
    if out.suffix.lower() not in FORMATS:
        raise LstmkitError(f"--out {out}: the picture's format comes from its suffix; end it in .png, .svg or .pdf")
    history, epochs = _history(model_dir)
    panels = [key for key in PANELS if _series(history, key, epochs) or _series(history, f"val_{key}", epochs)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, key in zip(axes[0], panels):
        for name, label, style in ((key, "train", "o-"), (f"val_{key}", "validation", "s-")):
            if _series(history, name, epochs):
                ax.plot(epochs, history[name], style, label=label)
        ax.set_xlabel("epoch")
        ax.set_xticks(list(epochs))
        ax.set_ylabel(key)
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"training curves: {model_dir.name}")
    fig.tight_layout()
    fmt = FORMATS[out.suffix.lower()]
    try:
        return write_with(out, lambda tmp: fig.savefig(tmp, dpi=100, format=fmt), suffix=out.suffix)
    finally:
        plt.close(fig)


def plot_confusion(matrix, class_names, out, title="confusion matrix"):
    """Write the confusion matrix (K, K) (rows: true class, columns: predicted) as a PNG, SVG or
    PDF by `out`'s suffix: counts in the cells, each row shaded by its share (its recall on the
    diagonal), so a rare class's row is as visible as a common one's. Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out = picture_path(out, "confusion.png")
    counts = np.asarray(matrix, np.int64)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 1.2 + 0.7 * len(class_names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, f"{n:,}", ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45 if len(class_names) > 4 else 0)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="share of the true class")
    fig.tight_layout()
    return _save_figure(fig, out)


def plot_reliability(calibration, out, title="reliability"):
    """Write the reliability diagram of `calibration_report(..., bins=True)`: per confidence bin,
    accuracy against mean confidence, before and after the temperature (the diagonal is perfect
    calibration), and how many texts each bin holds. Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out = picture_path(out, "reliability.png")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6.5), height_ratios=(3, 1), sharex=True)
    top.plot([0, 1], [0, 1], ":", color="gray", label="perfect")
    names = (("raw", f"raw (ECE {calibration['ece']:.3f})", "o-"),)
    names += (("calibrated", f"T = {calibration['temperature']:.2f} (ECE {calibration['ece_calibrated']:.3f})", "s-"),)
    for key, label, style in names:
        b = calibration["bins"][key]
        used = np.asarray(b["count"]) > 0
        confidence, accuracy = (np.asarray(b[k], dtype=object)[used].astype(float) for k in ("confidence", "accuracy"))
        top.plot(confidence, accuracy, style, label=label)
    top.set_ylabel("accuracy")
    top.set_title(title)
    top.grid(alpha=0.3)
    top.legend()
    counts = calibration["bins"]["calibrated"]["count"]
    bottom.bar((np.arange(len(counts)) + 0.5) / len(counts), counts, width=0.9 / len(counts), color="C1")
    bottom.set_xlabel("confidence (the predicted class's probability, after T)")
    bottom.set_ylabel("texts")
    bottom.set_xlim(0, 1)
    fig.tight_layout()
    return _save_figure(fig, out)


def _save_figure(fig, out):
    """Write `fig` to `out` atomically, in the format its suffix names, and close it; returns the path."""
    import matplotlib.pyplot as plt

    try:
        return write_with(
            out, lambda tmp: fig.savefig(tmp, dpi=100, format=FORMATS[out.suffix.lower()]), suffix=out.suffix
        )
    finally:
        plt.close(fig)


def picture_path(out, example):
    """`out` as a Path, or an LstmkitError when it is a folder or its suffix is not a picture's."""
    out = Path(out)
    if out.is_dir():
        raise LstmkitError(f"cannot write {out}: it is a folder; give a file name such as {out / example}")
    if out.suffix.lower() not in FORMATS:
        raise LstmkitError(f"{out}: the picture's format comes from its suffix; end it in .png, .svg or .pdf")
    return out


def _history(model_dir):
    """(history dict, epochs range) of a model directory, or an LstmkitError that says what is wrong."""
    path = model_dir / "history.json"
    if not path.is_file():
        raise LstmkitError(f"{model_dir} has no history.json; is it a model directory written by `lstmkit train`?")
    try:
        history = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        history = None
    if not isinstance(history, dict) or not isinstance(history.get("loss"), list):
        raise LstmkitError(f"{path} is not a training history (no list of losses); retrain or restore the model")
    epochs = range(1, len(history["loss"]) + 1)
    if not epochs:
        raise LstmkitError(f"{path} holds no finished epoch to plot")
    return history, epochs


def _series(history, key, epochs):
    """Whether history[key] is one number per epoch."""
    values = history.get(key)
    return isinstance(values, list) and len(values) == len(epochs) and all(isinstance(v, (int, float)) for v in values)
