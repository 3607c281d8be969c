"""Training curves from a model directory's history.json, drawn with matplotlib."""

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
