"""Training curves from a model directory's history.json, drawn with matplotlib."""

from __future__ import annotations

import json
from pathlib import Path

from lstmkit.atomic import write_with
from lstmkit.errors import LstmkitError
from lstmkit.io.checkpoint import resolve_dir


def plot_history(model_dir, out=None):
    """Write loss and accuracy per epoch, train against validation, as a PNG; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model_dir = resolve_dir(model_dir)
    path = model_dir / "history.json"
    if not path.exists():
        raise LstmkitError(f"{model_dir} has no history.json; is it a model directory written by `lstmkit train`?")
    history = json.loads(path.read_text())
    epochs = range(1, len(history.get("loss", [])) + 1)
    if not epochs:
        raise LstmkitError(f"{path} holds no finished epoch to plot")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, history[key], "o-", label="train")
        if history.get(f"val_{key}"):
            ax.plot(epochs, history[f"val_{key}"], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_xticks(list(epochs))
        ax.set_ylabel(key)
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"training curves: {model_dir.name}")
    fig.tight_layout()
    out = Path(out) if out else model_dir / "curves.png"
    try:
        return write_with(out, lambda tmp: fig.savefig(tmp, dpi=100, format="png"), suffix=".png")
    finally:
        plt.close(fig)
