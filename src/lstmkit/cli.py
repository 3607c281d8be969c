"""The `lstmkit` command line: a thin layer over the Python API.

User mistakes raise `LstmkitError` (or a click usage error) and end as one line on stderr with
exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import os
import sys

import click

from lstmkit.errors import LstmkitError


class _UserError(click.ClickException):
    exit_code = 2


class _Group(click.Group):
    """A click group that turns LstmkitError into one clean line instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LstmkitError as e:
            raise _UserError(str(e)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lstmkit")
def main():
    """lstmkit: understand, train and use LSTM text classifiers."""


# The seed's neuron, and documented output-gate defaults (the seed never reached the output gate).
CELL_DEFAULTS = {
    "x": 0.0, "h_prev": 100.0, "c_prev": 0.3,
    "wxf": 0.8, "whf": 0.5, "bf": 0.2,
    "wxi": 0.7, "whi": 0.6, "bi": 0.1,
    "wxc": 0.9, "whc": 0.4, "bc": 0.05,
    "wxo": 0.5, "who": -0.02, "bo": 0.0,
}  # fmt: skip

GATE_MEANING = {
    "f": "forget gate: the share of the old cell c_prev that is kept",
    "i": "input gate: the share of the candidate that is written",
    "g": "candidate: the new content that could be written, in (-1, 1)",
    "o": "output gate: the share of tanh(c) shown as h",
}


def _cell_options(f):
    for name in reversed(list(CELL_DEFAULTS)):
        flag = "--" + name.replace("_", "-")
        f = click.option(flag, name, type=float, default=CELL_DEFAULTS[name], show_default=True)(f)
    return f


@main.command()
@_cell_options
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of the walk-through")
def cell(as_json, **v):
    """One LSTM neuron, step by step: the seed's walk-through done right.

    Scalar weights per gate: Wx* multiplies x, Wh* multiplies h_prev, b* is the bias. The
    candidate's weights keep the seed's names (Wxc, Whc, bc). Defaults are the seed's numbers;
    the output gate, which the seed never reached, defaults to Wxo=0.5, Who=-0.02, bo=0.
    """
    import jax.numpy as jnp

    from lstmkit.core.cell import lstm_cell, split_gates

    # The cell's weights for E = H = 1, laid out in gate order i, f, g, o.
    params = {
        "W_x": jnp.array([[v["wxi"], v["wxf"], v["wxc"], v["wxo"]]]),
        "W_h": jnp.array([[v["whi"], v["whf"], v["whc"], v["who"]]]),
        "b": jnp.array([v["bi"], v["bf"], v["bc"], v["bo"]]),
    }
    x, h_prev, c_prev = jnp.array([v["x"]]), jnp.array([v["h_prev"]]), jnp.array([v["c_prev"]])
    h, c, gates = lstm_cell(params, x, h_prev, c_prev)
    z = x @ params["W_x"] + h_prev @ params["W_h"] + params["b"]
    pre = dict(zip("ifgo", (float(a[0]) for a in split_gates(z))))
    act = {"i": float(gates.i[0]), "f": float(gates.f[0]), "g": float(gates.g[0]), "o": float(gates.o[0])}
    out = {**act, "c": float(c[0]), "h": float(h[0]), "preactivation": pre, "inputs": dict(v)}
    if as_json:
        click.echo(json.dumps(out))
        return
    x_, hp, cp = v["x"], v["h_prev"], v["c_prev"]
    rows = [
        ("f", "sigmoid", v["wxf"], v["whf"], v["bf"]),
        ("i", "sigmoid", v["wxi"], v["whi"], v["bi"]),
        ("g", "tanh", v["wxc"], v["whc"], v["bc"]),
        ("o", "sigmoid", v["wxo"], v["who"], v["bo"]),
    ]
    click.echo(f"inputs: x = {x_:g}, h_prev = {hp:g}, c_prev = {cp:g}\n")
    for k, fn, wx, wh, b in rows:
        click.echo(f"{k} = {fn}({wx:g}*x + {wh:g}*h_prev + {b:g}) = {fn}({pre[k]:.6g}) = {act[k]:.6g}")
        click.echo(f"    {GATE_MEANING[k]}")
    click.echo(f"\nc = f*c_prev + i*g = {act['f']:.6g}*{cp:g} + {act['i']:.6g}*{act['g']:.6g} = {out['c']:.6g}")
    click.echo("    new cell: the long-term memory after this step")
    click.echo(f"h = o*tanh(c) = {act['o']:.6g}*tanh({out['c']:.6g}) = {out['h']:.6g}")
    click.echo("    new hidden state: the short-term memory, and the cell's output")


def _enable_compile_cache():
    """Keep compiled XLA code across processes, so a second `lstmkit predict` starts fast.

    LSTMKIT_COMPILE_CACHE=0 turns it off (the test suite does, to leave the user's cache alone).
    """
    import jax

    from lstmkit.paths import lstmkit_home

    if os.environ.get("LSTMKIT_COMPILE_CACHE") == "0":
        return
    jax.config.update("jax_compilation_cache_dir", str(lstmkit_home() / "jax-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def _pairs(ctx, param, value):
    """A repeatable KEY=VALUE option as a dict (None when not given, so the preset's stays)."""
    from lstmkit.tasks.presets import parse_student

    return parse_student(value) if value else None


def _preset_options(f):
    """One --flag per preset setting (bool settings get --x/--no-x); None keeps the preset's value."""
    from lstmkit.tasks.presets import CHOICES, SEED

    for key in reversed(list(SEED)):
        flag = key.replace("_", "-")
        value = SEED[key]
        if isinstance(value, dict):  # --student KEY=VALUE, repeatable
            f = click.option(
                f"--{flag}",
                key,
                multiple=True,
                callback=_pairs,
                metavar="KEY=VALUE",
                help="a setting of the self-training students that differs from the first model's, repeatable; replaces the preset's (e.g. lstm_units=128; 'none': no differences)",
            )(f)
        elif isinstance(value, bool):
            f = click.option(f"--{flag}/--no-{flag}", key, default=None, help=f"override the preset's {key}")(f)
        else:
            kind = (
                click.Choice(CHOICES[key])
                if key in CHOICES
                else float
                if isinstance(value, float)
                else int
                if isinstance(value, int)
                else str
            )
            f = click.option(f"--{flag}", key, type=kind, default=None, help=f"override the preset's {key}")(f)
    return f


@main.command()
@click.option(
    "--data",
    default="imdb",
    show_default=True,
    help="imdb (download and cache), an aclImdb folder or .tar.gz, or a CSV/TSV/JSONL file or class-per-folder directory",
)
@click.option(
    "--test-data",
    default=None,
    help="a separate labelled test source (else the data's own test split, or a held-out 20%)",
)
@click.option(
    "--preset",
    default="default",
    show_default=True,
    help="seed (the seed notebook exactly), default (recommended), or best (self-trains on --unlabeled text; slower)",
)
@click.option("--out", default="runs/model", show_default=True, type=click.Path(), help="model directory to write")
@click.option("--text-column", default=None, help="text column of a CSV/TSV/JSONL file (autodetected)")
@click.option("--label-column", default=None, help="label column of a CSV/TSV/JSONL file (autodetected)")
@click.option("--resume", is_flag=True, help="continue the interrupted run in --out from its last checkpoint")
@click.option(
    "--overwrite", is_flag=True, help="replace the model already at --out (a folder of other files is never replaced)"
)
@click.option("--quiet", is_flag=True, help="no progress bars (the per-epoch lines stay)")
@click.option(
    "--pretrained",
    default=None,
    type=click.Path(),
    help="start from `lstmkit pretrain`'s directory: its vocabulary, embedding and first LSTM layer",
)
@click.option(
    "--unlabeled",
    multiple=True,
    help="unlabeled text for --self-training, repeatable: an aclImdb folder/.tar.gz (its 50k unsup reviews), a .txt file (one text per line), a CSV/TSV/JSONL text column, or a folder of .txt files",
)
@_preset_options
def train(
    data,
    test_data,
    preset,
    out,
    text_column,
    label_column,
    resume,
    overwrite,
    quiet,
    pretrained,
    unlabeled,
    **overrides,
):
    """Train a text classifier and write its model directory.

    Every preset setting can be overridden by its flag, e.g. --epochs 3 --max-tokens 20000.
    """
    from lstmkit.tasks.presets import resolve
    from lstmkit.tasks.run import train_run

    _enable_compile_cache()
    config = resolve(preset, **overrides)
    try:
        train_run(
            config,
            data,
            out,
            test_data=test_data,
            text_column=text_column,
            label_column=label_column,
            resume=resume,
            overwrite=overwrite,
            progress=not quiet,
            pretrained=pretrained,
            unlabeled=unlabeled,
        )
    except KeyboardInterrupt:
        from lstmkit.io.checkpoint import directory_kind

        if directory_kind(out) == "model":
            click.echo(
                f"\ninterrupted: the last finished epoch's checkpoint is intact in {out}; continue with --resume",
                err=True,
            )
        else:
            click.echo(f"\ninterrupted before the first epoch ended: nothing was saved in {out}", err=True)
        sys.exit(130)


@main.command()
@click.argument("model_dir", type=click.Path())
@click.option(
    "--data", required=True, help="labelled data: imdb, an aclImdb folder or .tar.gz, or a CSV/TSV/JSONL/folder dataset"
)
@click.option(
    "--split",
    default="test",
    show_default=True,
    type=click.Choice(["train", "test"]),
    help="split of a source that has splits",
)
@click.option("--text-column", default=None)
@click.option("--label-column", default=None)
@click.option(
    "--positive-class",
    default=None,
    help="for two classes: the one whose precision, recall and F1 lead (default the second)",
)
@click.option("--json", "as_json", is_flag=True, help="print the metrics as one JSON object")
def evaluate(model_dir, data, split, text_column, label_column, positive_class, as_json):
    """Accuracy; precision, recall, F1 and support per class, their macro and weighted averages;
    ROC AUC for two classes; the confusion matrix."""
    from lstmkit.tasks.run import evaluate_run

    _enable_compile_cache()
    m = evaluate_run(
        model_dir, data, split=split, text_column=text_column, label_column=label_column, positive_class=positive_class
    )
    if as_json:
        click.echo(json.dumps(m))
        return
    _echo_report(m)


def _echo_report(m):
    """The metrics as tables: per class, the averages, the confusion matrix."""
    names = m["class_names"]
    width = max(10, *(len(n) + 2 for n in names))
    click.echo(f"{'examples':<{width}} {m['n']}\n{'accuracy':<{width}} {m['accuracy']:.4f}")
    if "positive_class" in m:
        click.echo(
            f"{'ROC AUC':<{width}} {m['roc_auc']:.4f}   (positive class: {m['positive_class']}; --positive-class chooses)"
        )
    click.echo(f"\n{'':<{width}} {'precision':>10} {'recall':>10} {'f1':>10} {'support':>10}")
    for name in names:
        c = m["per_class"][name]
        click.echo(f"{name:<{width}} {c['precision']:>10.4f} {c['recall']:>10.4f} {c['f1']:>10.4f} {c['support']:>10}")
    for average in ("macro", "weighted"):
        a = m[average]
        click.echo(
            f"{average + ' avg':<{width}} {a['precision']:>10.4f} {a['recall']:>10.4f} {a['f1']:>10.4f} {m['n']:>10}"
        )
    click.echo("\nconfusion matrix (rows: true, columns: predicted)")
    click.echo(" " * width + "".join(f"{n:>{width}}" for n in names))
    for n, row in zip(names, m["confusion_matrix"]):
        click.echo(f"{n:<{width}}" + "".join(f"{v:>{width}}" for v in row))


@main.command()
@click.argument("model_dir", type=click.Path())
@click.argument("texts", nargs=-1)
@click.option(
    "--file",
    "file",
    type=click.Path(),
    default=None,
    help="texts from a file: one per line (lines end at \\n only), or a .csv/.tsv/.jsonl file's text column",
)
@click.option("--text-column", default=None, help="the text column of a --file table (autodetected)")
@click.option(
    "--id-column",
    default=None,
    help="a --file table's column that names each row in the output (default: its row number)",
)
@click.option(
    "--keep-blank", is_flag=True, help="score blank lines too (by default they are skipped, and counted on stderr)"
)
@click.option(
    "--top-k", type=click.IntRange(min=0), default=0, help="also print the K likeliest classes with their probabilities"
)
@click.option(
    "--all", "all_classes", is_flag=True, help="print every class's probability (the same as --top-k with every class)"
)
@click.option(
    "--json", "as_json", is_flag=True, help="one JSON object per line: line (or id), text, label, probability, top_k"
)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
def predict(model_dir, texts, file, text_column, id_column, keep_blank, top_k, all_classes, as_json, batch_size):
    """Label texts with a saved model: arguments, --file, or standard input (one text per line).

    Every row of the output starts with where its text came from: the line number of the file or
    of standard input (the position, for texts given as arguments), or --id-column's value.
    Output is written as the input is read, a batch at a time.
    """
    from lstmkit.data import inputs
    from lstmkit.nn.model import load_model
    from lstmkit.tasks.run import predict_texts

    _enable_compile_cache()
    if file is not None:
        rows = inputs.file_texts(file, text_column=text_column, id_column=id_column)
    elif texts:
        rows = enumerate(texts, 1)
    elif sys.stdin.isatty():
        raise LstmkitError("no text to label: pass texts as arguments, --file PATH, or pipe them in, one per line")
    else:
        rows = inputs.stdin_lines()
    model = load_model(model_dir)
    if model.vectorizer is None:
        raise LstmkitError(f"{model_dir} is a model over token ids, with no vocabulary; predict needs a text model")
    k = len(model.class_names) if all_classes else min(top_k, len(model.class_names))
    skipped, seen = [], 0
    for chunk in inputs.chunks(rows if keep_blank else inputs.non_blank(rows, skipped), 4 * batch_size):
        seen += len(chunk)
        for (where, _), r in zip(chunk, predict_texts(model, [t for _, t in chunk], batch_size=batch_size, top_k=k)):
            _echo_prediction("id" if id_column else "line", where, r, as_json)
    if skipped:
        shown = ", ".join(map(str, skipped[:10])) + (", ..." if len(skipped) > 10 else "")
        click.echo(f"skipped {len(skipped)} blank line(s): {shown} (--keep-blank scores them)", err=True)
    if not seen:
        raise LstmkitError("no text to label: the input holds no non-blank line")


def _echo_prediction(key, where, r, as_json):
    if as_json:
        click.echo(json.dumps({key: where, **r}))
        return
    top = "".join(f"\t{t['label']}={t['probability']:.4f}" for t in r.get("top_k", []))
    preview = " ".join(r["text"][:200].split())[:80]  # one output line per text, whatever its whitespace
    click.echo(f"{where}\t{r['label']}\t{r['probability']:.4f}{top}\t{preview}")


@main.command()
@click.argument("model_dir", type=click.Path())
@click.option("--out", "out", type=click.Path(), default=None, help="PNG path (default MODEL_DIR/curves.png)")
def plot(model_dir, out):
    """Training curves (loss and accuracy, train against validation) as a PNG."""
    from lstmkit.tasks.plots import plot_history

    path = plot_history(model_dir, out)
    click.echo(f"wrote {path}")


@main.command("explain")
@click.argument("model_dir", type=click.Path())
@click.argument("text")
@click.option(
    "--html",
    "html_out",
    type=click.Path(),
    default=None,
    help="write the self-contained page (text, trajectory, gate heat maps)",
)
@click.option("--png", "png_out", type=click.Path(), default=None, help="write the same as a PNG (matplotlib)")
@click.option("--json", "as_json", is_flag=True, help="print all the numbers as one JSON object")
def explain_command(model_dir, text, html_out, png_out, as_json):
    """Look inside one prediction: gates, trajectory and word attributions for TEXT ('-' reads stdin).

    Without --html, --png or --json, prints the label, its probability and the words that moved
    it most (occlusion: the change in log-odds when the word is replaced by [UNK]).
    """
    from lstmkit import explain as explain_mod
    from lstmkit.nn.model import load_model

    _enable_compile_cache()
    if text == "-":
        text = sys.stdin.read()
    result = explain_mod.explain(load_model(model_dir), text)
    if html_out:
        click.echo(f"wrote {explain_mod.save_html(result, html_out)}", err=as_json)
    if png_out:
        click.echo(f"wrote {explain_mod.save_png(result, png_out)}", err=as_json)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
    elif not (html_out or png_out):
        click.echo(explain_mod.summary(result))


def _lm_default(key):
    from lstmkit.tasks.presets import LMConfig

    return getattr(LMConfig(), key)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def info(as_json):
    """Versions, the CPU, which LSTM implementation runs here and why, and the cache folders."""
    import platform

    import jax
    import numpy as np

    from lstmkit.core import fused
    from lstmkit.paths import lstmkit_home
    from lstmkit.version import __version__

    ok, why = fused.status()
    cpu = fused.cpu_summary()
    home = lstmkit_home()
    facts = {
        "lstmkit": __version__, "python": platform.python_version(), "jax": jax.__version__, "jaxlib": jax.lib.__version__,
        "numpy": np.__version__, "backend": jax.default_backend(), "cpu": cpu["model"], "cpu_features": cpu["features"],
        "cores": os.cpu_count(), "lstm": "kernel" if ok else "jax-scan", "lstm_reason": why, "home": str(home),
        "kernel_cache": str(fused.kernel_dir()), "compile_cache": str(home / "jax-cache"), "datasets": str(home / "datasets"),
    }  # fmt: skip
    if as_json:
        click.echo(json.dumps(facts))
        return
    for key, value in facts.items():
        click.echo(f"{key:<14} {' '.join(value) if isinstance(value, list) else value}")


@main.command("build-kernel")
def build_kernel():
    """Build the fused LSTM kernel for this CPU now (else it is built on first use) and say where."""
    from lstmkit.core import fused

    ok, why = fused.status()
    if not ok:
        raise LstmkitError(f"no kernel: {why}")
    click.echo(f"ready: {why}")


@main.command("pretrain")
@click.option(
    "--data",
    default=None,
    help="labelled data as `train --data` reads it; only its training part is used (imdb: the train split)",
)
@click.option(
    "--unlabeled",
    multiple=True,
    help="more text, repeatable: imdb or an aclImdb folder/.tar.gz (its 50k unsup reviews), a .txt file (one text per line), a CSV/TSV/JSONL text column, or a folder of .txt files",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(),
    help="pretrained directory to write (use it with `lstmkit train --pretrained`)",
)
@click.option("--overwrite", is_flag=True, help="replace the pretrained directory already at --out")
@click.option("--text-column", default=None, help="text column of CSV/TSV/JSONL sources (autodetected)")
@click.option("--epochs", type=int, default=_lm_default("epochs"), show_default=True)
@click.option(
    "--max-steps",
    type=int,
    default=0,
    show_default=True,
    help="stop after this many steps in all (0: no limit); for a short run",
)
@click.option(
    "--max-tokens",
    type=int,
    default=_lm_default("max_tokens"),
    show_default=True,
    help="input vocabulary, as the classifier's --max-tokens",
)
@click.option("--embedding-dim", type=int, default=_lm_default("embedding_dim"), show_default=True)
@click.option("--lstm-units", type=int, default=_lm_default("lstm_units"), show_default=True)
@click.option(
    "--bidirectional/--no-bidirectional",
    default=_lm_default("bidirectional"),
    show_default=True,
    help="pretrain a backward LM too, for a Bidirectional classifier",
)
@click.option(
    "--sequence-length",
    type=int,
    default=_lm_default("sequence_length"),
    show_default=True,
    help="BPTT window: texts are cut into windows of this many tokens",
)
@click.option(
    "--output-vocab",
    type=int,
    default=_lm_default("output_vocab"),
    show_default=True,
    help="the LM predicts the most frequent K ids; rarer words count as [UNK]",
)
@click.option(
    "--negatives",
    type=int,
    default=_lm_default("negatives"),
    show_default=True,
    help="sampled-softmax negatives per batch (0: exact softmax over --output-vocab)",
)
@click.option("--batch-size", type=int, default=_lm_default("batch_size"), show_default=True)
@click.option("--learning-rate", type=float, default=_lm_default("learning_rate"), show_default=True)
@click.option("--seed", type=int, default=_lm_default("seed"), show_default=True)
@click.option("--quiet", is_flag=True, help="no progress bars (the per-epoch lines stay)")
def pretrain_command(data, unlabeled, out, overwrite, text_column, quiet, **settings):
    """Pretrain the Embedding and first LSTM layer as a language model on unlabeled text.

    The defaults match the default preset's sizes, so `lstmkit train --pretrained OUT` adopts
    the vocabulary, embedding and LSTM weights. Example:

        lstmkit pretrain --data imdb --unlabeled imdb --out runs/lm --epochs 1
    """
    from lstmkit.tasks.pretrain import pretrain_run

    _enable_compile_cache()
    pretrain_run(data, unlabeled, out, text_column=text_column, progress=not quiet, overwrite=overwrite, **settings)


if __name__ == "__main__":
    sys.exit(main())
