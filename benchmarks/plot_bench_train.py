"""Plot the cost of a training step against T, H and B from bench_train.py --grid --json files.

    python benchmarks/plot_bench_train.py runs/grid.json runs/sweep.json --out docs/bench_train_grid.png

Three panels, one line per framework, log-scaled milliseconds:

- against T: the mean tokens per text of the data (IMDB's first sentences, IMDB cut to each
  --lengths, IMDB whole), ms per batch;
- against H: hidden units per direction, ms per batch;
- against B: the batch size, ms per text (ms per batch / B).

Each panel holds every other setting at the reference (IMDB, the longest T, B = 64, H = 64, the
bidirectional LSTM, the most cores measured), so a line moves along one axis only. Rows from
several JSON files are pooled; the last one measured wins where two files have the same setting.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FRAMEWORKS = ("lstmkit", "keras-tf", "keras-jax", "torch")
STYLE = {"lstmkit": "o-", "keras-tf": "s--", "keras-jax": "^--", "torch": "d--"}


def load_rows(paths: list[Path]) -> tuple[list[dict], str]:
    """(the grid rows of all files, the model they measured); a later file's row replaces an
    earlier one of the same setting."""
    rows, models = {}, set()
    for path in paths:
        report = json.loads(path.read_text())
        models.add(report["settings"]["model"])
        for row in report["rows"]:
            rows[json.dumps(row["setting"], sort_keys=True)] = row
    return list(rows.values()), " and ".join(sorted(models))


def reference(rows: list[dict]) -> dict:
    """The setting every panel holds fixed, except its own axis."""
    cores = max(r["setting"]["cores"] for r in rows)
    length = max(r["setting"]["length"] for r in rows)
    return {"corpus": "imdb", "length": length, "batch_size": 64, "hidden": 64, "direction": "bi", "cores": cores}


def along(rows: list[dict], ref: dict, varying: tuple[str, ...]) -> list[dict]:
    """The rows equal to ref in every key but `varying`."""
    return [r for r in rows if all(r["setting"][k] == v for k, v in ref.items() if k not in varying)]


def panel(axis, rows: list[dict], x_of, y_of, xlabel: str, ylabel: str) -> None:
    xs = sorted({x_of(r) for r in rows})
    for name in FRAMEWORKS:
        points = sorted((x_of(r), y_of(r, name)) for r in rows if name in r["ms_per_batch"])
        if points:
            axis.plot(*zip(*points), STYLE[name], label=name, markersize=4)
    axis.set_xscale("log")
    axis.set_xticks(xs, [f"{x:.0f}" for x in xs])
    axis.minorticks_off()
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_yscale("log")
    axis.grid(True, which="both", alpha=0.3)
    if not rows:
        axis.text(0.5, 0.5, "not measured", ha="center", transform=axis.transAxes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", type=Path, help="files written by bench_train.py --grid --json")
    parser.add_argument("--out", type=Path, default=Path("docs/bench_train_grid.png"))
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, model = load_rows(args.json)
    ref = reference(rows)
    per_batch = lambda r, name: r["ms_per_batch"][name]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    panel(
        axes[0],
        along(rows, ref, ("corpus", "length")),
        lambda r: r["mean_length"],
        per_batch,
        "mean tokens per text (T)",
        "ms per batch",
    )
    panel(
        axes[1],
        along(rows, ref, ("hidden",)),
        lambda r: r["setting"]["hidden"],
        per_batch,
        "hidden units per direction (H)",
        "ms per batch",
    )
    per_text = lambda r, name: r["ms_per_batch"][name] / r["setting"]["batch_size"]
    panel(
        axes[2],
        along(rows, ref, ("batch_size",)),
        lambda r: r["setting"]["batch_size"],
        per_text,
        "batch size (B)",
        "ms per text",
    )
    short = [r for r in along(rows, ref, ("corpus", "length")) if r["setting"]["corpus"] == "short"]
    for r in short:  # the peers' padding there is the longest text's, not the mean
        axes[0].annotate(
            f"short texts\n(peers padded\nto {r['width']})",
            (r["mean_length"], 0.5),
            xycoords=("data", "axes fraction"),
            fontsize=7,
        )
    axes[0].tick_params(axis="x", labelrotation=60, labelsize=7)
    axes[1].legend(fontsize=8, loc="upper left")
    cores = ref["cores"] or "all"
    model = "the default preset's model without adversarial training" if model == "default" else f"model {model}"
    fig.suptitle(f"one training step of {model}, {cores} cores (log scales)", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=72)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB) from {len(rows)} rows")


if __name__ == "__main__":
    main()
