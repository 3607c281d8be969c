"""The trials of a `lstmkit tune` search as a table: rows, trials.csv and trials.png (validation
loss against trial number, with the best so far), each written atomically.

A row: number, state (complete; pruned by the median rule; stopped by the time budget), each
searched setting, val_loss (a complete trial's objective; a stopped one's last epoch), the
validation loss after each epoch (semicolon-separated), epochs run and seconds.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from lstmkit.atomic import write_bytes, write_with

COLUMNS_BEFORE = ("number", "state")
COLUMNS_AFTER = ("val_loss", "val_loss_per_epoch", "epochs_run", "seconds")


def describe_params(params):
    """Settings as one short line: learning_rate=0.0021 epochs=2 ...

    >>> describe_params({"learning_rate": 0.0021345, "epochs": 2})
    'learning_rate=0.002135 epochs=2'
    """
    return " ".join(
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in params.items()
    )


def trial_rows(study, keys):
    """One dict per finished trial of an Optuna study, in trial order, with COLUMNS and `keys`."""
    rows = []
    for trial in study.trials:
        state = trial.state.name.lower()
        if state == "pruned" and trial.user_attrs.get("stopped") == "budget":
            state = "stopped"
        elif state not in ("complete", "pruned"):
            continue  # a failed trial raised its error; a running one is not a result
        losses = [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]
        value = trial.value if state == "complete" else (losses[-1] if losses else None)
        rows.append(
            {
                "number": trial.number,
                "state": state,
                **{key: trial.params.get(key) for key in keys},
                "val_loss": value,
                "val_loss_per_epoch": ";".join(f"{loss:.6g}" for loss in losses),
                "epochs_run": len(losses),
                "seconds": round(float(trial.user_attrs.get("seconds", 0.0)), 2),
            }
        )
    return rows


def write_trials(folder, rows, keys):
    """folder/trials.csv and folder/trials.png; returns their paths."""
    folder = Path(folder)
    return write_trials_csv(folder / "trials.csv", rows, keys), plot_trials(folder / "trials.png", rows)


def write_trials_csv(path, rows, keys):
    """The trials as CSV, one row per trial, a header naming the columns."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=[*COLUMNS_BEFORE, *keys, *COLUMNS_AFTER], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    return write_bytes(path, text.getvalue().encode("utf-8"))


def plot_trials(path, rows):
    """Validation loss against trial number (complete trials filled, pruned and stopped ones hollow
    at their last epoch's loss) and the best complete trial so far as a step line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4))
    for state, marker, label in (
        ("complete", "o", "complete"),
        ("pruned", "v", "pruned (median rule)"),
        ("stopped", "s", "stopped (time budget)"),
    ):
        points = [(r["number"], r["val_loss"]) for r in rows if r["state"] == state and r["val_loss"] is not None]
        if points:
            x, y = zip(*points)
            look = {"color": "C0"} if state == "complete" else {"facecolors": "none", "edgecolors": "C0"}
            ax.scatter(x, y, marker=marker, label=label, **look)
    best, steps = None, []
    for r in rows:
        if r["state"] == "complete" and (best is None or r["val_loss"] < best):
            best = r["val_loss"]
        if best is not None:
            steps.append((r["number"], best))
    if steps:
        x, y = zip(*steps)
        ax.step(x, y, where="post", color="C1", label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("validation loss")
    ax.set_title("lstmkit tune: validation loss per trial")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        return write_with(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"), suffix=".png")
    finally:
        plt.close(fig)
