"""The commands that use a saved model: evaluate, predict, explain and plot."""

from __future__ import annotations

import json
import os
import sys

import click

from lstmkit.cli.compile_cache import enable_compile_cache
from lstmkit.cli.file_options import file_options
from lstmkit.errors import LstmkitError
from lstmkit.version import JSON_SCHEMA_VERSION


@click.command()
@click.argument("model_dir", type=click.Path())
@click.option(
    "--data",
    required=True,
    help="labelled data: imdb, an aclImdb folder or .tar.gz, a CSV/TSV/JSONL/fastText file (gzipped or not), or class folders",
)
@click.option(
    "--split",
    default="test",
    show_default=True,
    type=click.Choice(["train", "test"]),
    help="split of a source that has splits",
)
@click.option("--text-column", default=None, help="a name or 0-based index (autodetected)")
@click.option("--label-column", default=None, help="a name or 0-based index (autodetected)")
@file_options("--data")
@click.option(
    "--positive-class",
    default=None,
    help="for two classes: the one whose precision, recall and F1 lead (default the second)",
)
@click.option("--json", "as_json", is_flag=True, help="print the metrics as one JSON object")
@click.option(
    "--confusion-png",
    type=click.Path(),
    default=None,
    help="also draw the confusion matrix as a picture (.png, .svg or .pdf)",
)
@click.option(
    "--reliability-png",
    type=click.Path(),
    default=None,
    help="also draw the reliability diagram (accuracy against confidence, before and after the temperature)",
)
def evaluate(
    model_dir,
    data,
    split,
    text_column,
    label_column,
    file_format,
    header,
    positive_class,
    as_json,
    confusion_png,
    reliability_png,
):
    """Accuracy; precision, recall, F1 and support per class, their macro and weighted averages;
    ROC AUC and PR AUC for two classes; the confusion matrix (as a table, and --confusion-png); the
    expected calibration error before and after the model's temperature (--reliability-png)."""
    from lstmkit.tasks.multilabel import multilabel_table
    from lstmkit.tasks.plots import picture_path, plot_confusion, plot_reliability
    from lstmkit.tasks.use import evaluate_run

    for path, example in ((confusion_png, "confusion.png"), (reliability_png, "reliability.png")):
        if path:  # a bad path fails before the model runs
            picture_path(path, example)
    enable_compile_cache()
    m = evaluate_run(
        model_dir,
        data,
        split=split,
        text_column=text_column,
        label_column=label_column,
        file_format=file_format,
        header=header,
        positive_class=positive_class,
    )
    if m.get("multi_label"):
        if confusion_png or reliability_png:
            raise LstmkitError(
                "--confusion-png and --reliability-png are for one label per text; a multi-label model's report is per label"
            )
        click.echo(json.dumps({"schema_version": JSON_SCHEMA_VERSION, **m}) if as_json else multilabel_table(m))
        return
    if confusion_png:
        title = f"{m['n']:,} examples of {os.path.basename(str(data).rstrip('/'))}, accuracy {m['accuracy']:.4f}"
        click.echo(f"wrote {plot_confusion(m['confusion_matrix'], m['class_names'], confusion_png, title)}", err=True)
    if reliability_png:
        title = f"reliability: {m['n']:,} examples of {os.path.basename(str(data).rstrip('/'))}"
        click.echo(f"wrote {plot_reliability(m['calibration'], reliability_png, title)}", err=True)
    if as_json:
        click.echo(json.dumps({"schema_version": JSON_SCHEMA_VERSION, **m}))
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
        click.echo(f"{'PR AUC':<{width}} {m['pr_auc']:.4f}   (average precision; a random ranking scores its share)")
    c = m["calibration"]
    click.echo(f"{'ECE':<{width}} {c['ece']:.4f} -> {c['ece_calibrated']:.4f} with temperature {c['temperature']:.3f}")
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


@click.command()
@click.argument("model_dir", type=click.Path())
@click.argument("texts", nargs=-1)
@click.option(
    "--file",
    "file",
    type=click.Path(),
    default=None,
    help="texts from a file (gzipped or not): one per line (lines end at \\n only), or a CSV/TSV/JSONL/fastText file's texts",
)
@click.option(
    "--text-column", default=None, help="the text column of a --file table: a name or 0-based index (autodetected)"
)
@file_options("--file", txt=True)
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
    "--threshold",
    type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
    default=None,
    help="two classes: predict the second (positive) class when its probability is at least P (default 0.5); "
    "multi-label: every label whose probability is at least P (default: the thresholds tuned in training)",
    metavar="P",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="one JSON object per line: line (or id), text, label, probability, top_k (multi-label: labels, probabilities)",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
def predict(
    model_dir,
    texts,
    file,
    text_column,
    file_format,
    header,
    id_column,
    keep_blank,
    top_k,
    all_classes,
    threshold,
    as_json,
    batch_size,
):
    """Label texts with a saved model: arguments, --file, or standard input (one text per line).

    Every row of the output starts with where its text came from: the line number of the file or
    of standard input (the position, for texts given as arguments), or --id-column's value.
    Output is written as the input is read, a batch at a time. A multi-label model prints each
    text's labels and their probabilities, each list joined by '|' (both empty when no label holds).
    """
    from lstmkit.data import inputs
    from lstmkit.nn.model import load_model
    from lstmkit.tasks.use import check_threshold, predict_texts

    enable_compile_cache()
    if file is not None:
        rows = inputs.file_texts(
            file, text_column=text_column, id_column=id_column, file_format=file_format, header=header
        )
    elif texts:
        rows = enumerate(texts, 1)
    elif sys.stdin.isatty():
        raise LstmkitError("no text to label: pass texts as arguments, --file PATH, or pipe them in, one per line")
    else:
        rows = inputs.stdin_lines()
    rows = ((where, inputs.valid_utf8(text)) for where, text in rows)  # bytes that are not UTF-8 become U+FFFD
    model = load_model(model_dir)
    if model.vectorizer is None:
        raise LstmkitError(f"{model_dir} is a model over token ids, with no vocabulary; predict needs a text model")
    check_threshold(model, threshold, where=model_dir)
    k = len(model.class_names) if all_classes else min(top_k, len(model.class_names))
    skipped, seen = [], 0
    for chunk in inputs.chunks(rows if keep_blank else inputs.non_blank(rows, skipped), 4 * batch_size):
        seen += len(chunk)
        for (where, _), r in zip(
            chunk, predict_texts(model, [t for _, t in chunk], batch_size=batch_size, top_k=k, threshold=threshold)
        ):
            _echo_prediction("id" if id_column else "line", where, r, as_json)
    if not seen:
        raise LstmkitError(
            f"no text to label: the input holds no non-blank line ({len(skipped)} blank; --keep-blank scores them)"
        )
    if skipped:
        shown = ", ".join(map(str, skipped[:10])) + (", ..." if len(skipped) > 10 else "")
        click.echo(f"skipped {len(skipped)} blank line(s): {shown} (--keep-blank scores them)", err=True)


def _echo_prediction(key, where, r, as_json):
    if as_json:
        click.echo(json.dumps({"schema_version": JSON_SCHEMA_VERSION, key: where, **r}))
        return
    top = "".join(f"\t{t['label']}={t['probability']:.4f}" for t in r.get("top_k", []))
    preview = " ".join(r["text"][:200].split())[:80]  # one output line per text, whatever its whitespace
    if "labels" in r:  # multi-label: the set and its probabilities, each joined by "|" (empty: none)
        labels, proba = "|".join(r["labels"]), "|".join(f"{p:.4f}" for p in r["probabilities"].values())
        click.echo(f"{where}\t{labels}\t{proba}{top}\t{preview}")
        return
    click.echo(f"{where}\t{r['label']}\t{r['probability']:.4f}{top}\t{preview}")


@click.command()
@click.argument("model_dir", type=click.Path())
@click.option("--out", "out", type=click.Path(), default=None, help="PNG path (default MODEL_DIR/curves.png)")
def plot(model_dir, out):
    """Training curves (loss and accuracy, train against validation) as a PNG."""
    from lstmkit.tasks.plots import plot_history

    path = plot_history(model_dir, out)
    click.echo(f"wrote {path}")


@click.command("explain")
@click.argument("model_dir", type=click.Path())
@click.argument("text")
@click.option(
    "--html",
    "html_out",
    type=click.Path(),
    default=None,
    help="write the self-contained page (text, trajectory, memory through time, gate heat maps)",
)
@click.option("--png", "png_out", type=click.Path(), default=None, help="write the same as a PNG (matplotlib)")
@click.option("--json", "as_json", is_flag=True, help="print all the numbers as one JSON object")
@click.option(
    "--label",
    default=None,
    metavar="NAME",
    help="explain this class instead of the likeliest (more than two classes, or a multi-label model)",
)
def explain_command(model_dir, text, html_out, png_out, as_json, label):
    """Look inside one prediction: gates, trajectory, word attributions and memory for TEXT ('-' reads stdin).

    Without --html, --png or --json, prints the label, its probability, the words that moved it
    most (occlusion: the change in log-odds when the word is replaced by [UNK]) and how far back
    the decision reaches (the earliest token whose gradient norm is at least 10% of the largest).
    """
    # by name from the subpackage: `lstmkit.explain` is also the public API's function of that name
    from lstmkit.data import inputs
    from lstmkit.explain import explain, save_html, save_png, summary
    from lstmkit.nn.model import load_model

    enable_compile_cache()
    text = inputs.stdin_text() if text == "-" else inputs.valid_utf8(text)  # bytes not UTF-8 become U+FFFD
    result = explain(load_model(model_dir), text, label=label)
    if html_out:
        click.echo(f"wrote {save_html(result, html_out)}", err=as_json)
    if png_out:
        click.echo(f"wrote {save_png(result, png_out)}", err=as_json)
    if as_json:
        click.echo(json.dumps({"schema_version": JSON_SCHEMA_VERSION, **result}, ensure_ascii=False))
    elif not (html_out or png_out):
        click.echo(summary(result))
