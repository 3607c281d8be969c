"""`lstmkit tune`: a hyperparameter search within a time budget (Optuna, the `tune` extra, is
imported only when it runs)."""

from __future__ import annotations

import sys

import click

from lstmkit.cli.compile_cache import enable_compile_cache
from lstmkit.cli.file_options import file_options, multi_label_option
from lstmkit.cli.training import _preset_options


@click.command("tune")
@click.option(
    "--data",
    default="imdb",
    show_default=True,
    help="labelled data as `train --data` reads it; validation is carved from its training part as train carves it",
)
@click.option("--test-data", default=None, help="a separate labelled test source, as `train --test-data`")
@click.option("--minutes", type=float, required=True, help="the time budget of the search, data loading included")
@click.option(
    "--trials", type=int, default=None, help="at most this many trials (default: as many as the budget holds)"
)
@click.option("--preset", default="default", show_default=True, help="the configuration the search starts from")
@click.option("--out", required=True, type=click.Path(), help="model directory to write: the best trial's model")
@click.option("--text-column", default=None, help="text column of a CSV/TSV/JSONL file (autodetected)")
@click.option("--label-column", default=None, help="label column of a CSV/TSV/JSONL file (autodetected)")
@file_options("--data and --test-data")
@multi_label_option
@click.option(
    "--overwrite", is_flag=True, help="replace the model already at --out (a folder of other files is never replaced)"
)
@click.option("--quiet", is_flag=True, help="no progress bars (the per-epoch and per-trial lines stay)")
@_preset_options
def tune_command(
    data,
    test_data,
    minutes,
    trials,
    preset,
    out,
    text_column,
    label_column,
    file_format,
    header,
    multi_label,
    overwrite,
    quiet,
    **overrides,
):
    """Search learning rate, epochs, sizes, dropout, adversarial training, vocabulary, length and word
    pairs for the lowest validation loss within --minutes; write the best model, trials.csv and trials.png.

    A setting given as a flag (e.g. --epochs 2) is held fixed and not searched. Example:

        lstmkit tune --data reviews.csv --minutes 30 --out runs/tuned
    """
    from lstmkit.tasks.tune import import_optuna

    import_optuna()  # before anything else: a missing extra is the first thing to say
    from lstmkit.tasks.presets import resolve
    from lstmkit.tasks.tune import tune_run

    enable_compile_cache()
    config = resolve(preset, **overrides)
    fixed = [key for key, value in overrides.items() if value is not None]
    try:
        tune_run(
            config,
            data,
            out,
            minutes=minutes,
            trials=trials,
            fixed=fixed,
            overwrite=overwrite,
            progress=not quiet,
            test_data=test_data,
            text_column=text_column,
            label_column=label_column,
            file_format=file_format,
            header=header,
            multi_label=multi_label,
        )
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: tune writes {out} only at the end; nothing was saved", err=True)
        sys.exit(130)
