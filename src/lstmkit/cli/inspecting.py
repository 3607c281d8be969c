"""`lstmkit inspect`: what labelled data holds before training on it, each problem with its fix.

The numbers are `lstmkit.data.inspection`'s and the warnings `lstmkit.data.findings`'; this
module reads the data as `train` does and prints them. It needs no JAX.
"""

from __future__ import annotations

import json
import warnings

import click

from lstmkit.cli.file_options import file_options, multi_label_option
from lstmkit.data.findings import texts, where
from lstmkit.tasks.presets import CHOICES, PRESETS, help_line
from lstmkit.version import JSON_SCHEMA_VERSION


@click.command("inspect")
@click.argument("data")
@click.option(
    "--test-data",
    default=None,
    help="a labelled test source to compare with DATA (leakage, classes, unknown words); IMDB brings its own",
)
@click.option("--text-column", default=None, help="a name or 0-based index (autodetected)")
@click.option("--label-column", default=None, help="a name or 0-based index (autodetected)")
@file_options("DATA and --test-data")
@multi_label_option
@click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    default="default",
    show_default=True,
    help="the preset whose settings below are the defaults",
)
@click.option("--max-tokens", type=click.IntRange(min=3), default=None, help=help_line("max_tokens"))
@click.option("--sequence-length", type=click.IntRange(min=1), default=None, help=help_line("sequence_length"))
@click.option("--standardize", type=click.Choice(CHOICES["standardize"]), default=None, help=help_line("standardize"))
@click.option("--strip-html/--no-strip-html", default=None, help=help_line("strip_html"))
@click.option("--json", "as_json", is_flag=True, help="print the report as one JSON object")
def inspect_command(
    data, test_data, text_column, label_column, file_format, header, multi_label, preset, as_json, **settings
):
    """Inspect labelled DATA before training: label distribution, lengths in tokens and what
    --sequence-length cuts, duplicates within train and across train and test (leakage), empty and
    very long texts, the unknown-word rate at --max-tokens. Each warning names its fix.

    DATA is what `train --data` takes (an IMDB folder or archive brings its own test split).
    """
    from lstmkit.data.inspection import Settings, inspect_splits

    preset_values = PRESETS[preset]
    chosen = {k: preset_values[k] if v is None else v for k, v in settings.items()}
    settings = Settings(
        max_tokens=chosen["max_tokens"],
        sequence_length=chosen["sequence_length"],
        standardize=None if chosen["standardize"] == "none" else chosen["standardize"],
        strip_html=chosen["strip_html"],
    )
    reading = {"text_column": text_column, "label_column": label_column, "file_format": file_format, "header": header}
    train, test = _load(data, test_data, {**reading, "multi_label": multi_label})
    report = inspect_splits(train, test, settings)
    report["settings"]["preset"] = preset
    if as_json:
        click.echo(json.dumps({"schema_version": JSON_SCHEMA_VERSION, **report}, ensure_ascii=False))
    else:
        _echo_report(report, has_own_test=test is not None)


def _load(data, test_data, reading):
    """(train, test or None) as `Split`s, in file order; the loaders' warnings are in the report."""
    from lstmkit.data.dataset import DataWarning
    from lstmkit.data.imdb import imdb_source, read_imdb
    from lstmkit.data.sources import load_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # the counts of empty texts and bad bytes are reported
        imdb = imdb_source(data)
        if imdb is not None and test_data is None:
            splits = read_imdb(imdb, ("train", "test"), shuffle=False)  # one pass over the archive
            return _split(splits["train"], data), _split(splits["test"], data)
        train = load_dataset(data, shuffle=False, min_classes=1, **reading)
        reading = {**reading, "multi_label": True if train.multi_label else reading.get("multi_label")}
        if test_data is None:
            return _split(train, data), None
        split = "test" if imdb_source(test_data) is not None else None
        test = load_dataset(test_data, split=split, shuffle=False, min_classes=1, **reading)
    return _split(train, data), _split(test, test_data)


def _split(ds, source):
    import numpy as np

    from lstmkit.data.inspection import Split

    if ds.multi_label:  # a text's label is its set, so duplicates compare whole sets
        sets = [[ds.class_names[k] for k in np.flatnonzero(row)] for row in ds.labels]
        return Split(ds.texts, ["|".join(s) for s in sets], ds.ids, str(source), ds.empty, ds.replaced, sets)
    labels = [ds.class_names[k] for k in ds.labels]
    return Split(ds.texts, labels, ds.ids, source=str(source), empty_dropped=ds.empty, replaced=ds.replaced)


def _echo_report(r, has_own_test):
    splits = r["splits"]
    for name, s in splits.items():
        click.echo(f"{name + ':':<7}{s['n']:,} texts from {s['source']}")
    if not has_own_test:
        click.echo("(no test data: train holds out 20% of it; --test-data FILE also checks a test file for leakage)")
    _echo_labels(splits)
    for name, s in splits.items():
        if "labels_per_text" in s:  # multi-label: a text's labels counted once each
            c = s["labels_per_text"]
            click.echo(
                f"  {name}: {c['mean']:.2f} labels per text; {c['several']:,} with several, {c['none']:,} with none"
            )
    _echo_lengths(r)
    _echo_duplicates(r)
    v = r["vocabulary"]
    oov = ", ".join(f"{name} {s['oov']['share']:.2%}" for name, s in splits.items())
    click.echo(
        f"\nvocabulary: {v['distinct']:,} distinct tokens in train; --max-tokens {r['settings']['max_tokens']:,} "
        f"learns {v['learned']:,}; --max-tokens {v['max_tokens_for_95']:,} would cover 95% of train's tokens"
    )
    click.echo(f"  tokens outside it ([UNK]): {oov}")
    click.echo("\nwarnings" if r["warnings"] else "\nno warnings")
    for w in r["warnings"]:
        click.echo(f"  {w['code']}: {w['message']}")


def _echo_labels(splits):
    names = list(dict.fromkeys(c for s in splits.values() for c in s["labels"]))
    width = max(8, *(len(n) + 2 for n in names))
    click.echo("\nlabels" + " " * (width - 4) + "".join(f"{name:>18}" for name in splits))
    for c in names:
        cells = []
        for s in splits.values():
            x = s["labels"].get(c, {"count": 0, "share": 0.0})
            cells.append(f"{x['count']:>10,} {x['share']:>6.1%}")
        click.echo(f"  {c:<{width}}" + " ".join(cells))


def _echo_lengths(r):
    splits, settings = r["splits"], r["settings"]
    html = ", <br /> removed" if settings["strip_html"] else ""
    click.echo(f"\ntokens per text ({settings['standardize'] or 'no standardisation'}{html}, split on whitespace)")
    keys = ("min", "median", "p90", "p99", "max", "mean")
    click.echo("  " + " " * 6 + "".join(f"{k:>9}" for k in keys))
    for name, s in splits.items():
        n = s["lengths"]
        click.echo(f"  {name:<6}" + "".join(f"{n[k]:>9,.1f}" if k == "mean" else f"{n[k]:>9,}" for k in keys))
    c, p99 = splits["train"]["lengths"]["cut"], splits["train"]["lengths"]["p99"]
    click.echo(
        f"  training reads {c['sequence_length']:,} tokens (--sequence-length): it cuts {texts(c['texts'])} of train "
        f"({c['texts_share']:.1%}; {c['tokens_share']:.1%} of its tokens); 99% fit whole in {p99:,}"
    )
    for what, key in (("very long (over 10x the median and --sequence-length)", "very_long"),
                      ("no token after standardisation", "no_tokens")):  # fmt: skip
        click.echo(f"  {what}: " + ", ".join(f"{name} {s[key]['count']:,}" for name, s in splits.items()))
    click.echo("  empty (dropped): " + ", ".join(f"{name} {s['empty_dropped']:,}" for name, s in splits.items()))


def _echo_duplicates(r):
    click.echo("\nduplicates (the same text, surrounding whitespace aside)")
    for name, s in r["splits"].items():
        d = s["duplicates"]
        click.echo(
            f"  {name}: {texts(d['repeated'], 'copy', 'copies')} of earlier texts ({texts(d['groups'])} twice or "
            f"more, {d['conflicting']:,} with different labels); {d['same_tokens']:,} with an earlier one's tokens"
        )
        for e in d["examples"]:
            click.echo(f"    {e['copies']}x {where(e['where'])} [{', '.join(e['labels'])}]: {e['text']}")
    a = r.get("across")
    if a is not None:
        click.echo(
            f"  test texts also in train: {a['in_train']:,} ({a['share']:.1%}), {a['conflicting']:,} with another "
            f"label; {a['same_tokens']:,} with a train text's tokens"
        )
        for e in a["examples"]:
            click.echo(f"    {where(e['where'], 'test')} = {where(e['train_where'], 'train')}: {e['text']}")
