"""`lstmkit train` and `lstmkit pretrain`, with one flag per preset or pretraining setting."""

from __future__ import annotations

import sys

import click

from lstmkit.cli.compile_cache import enable_compile_cache
from lstmkit.cli.file_options import file_options, multi_label_option
from lstmkit.cli.processes import process_options


def _pairs(ctx, param, value):
    """A repeatable KEY=VALUE option as a dict (None when not given, so the preset's stays)."""
    from lstmkit.tasks.presets import parse_student

    return parse_student(value) if value else None


def _preset_options(f):
    """One --flag per preset setting (bool settings get --x/--no-x); None keeps the preset's value."""
    from lstmkit.tasks.presets import CHOICES, SEED, help_line

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
            f = click.option(f"--{flag}/--no-{flag}", key, default=None, help=help_line(key))(f)
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
            f = click.option(f"--{flag}", key, type=kind, default=None, help=help_line(key))(f)
    return f


@click.command()
@click.option(
    "--data",
    default="imdb",
    show_default=True,
    help="imdb (download and cache), an aclImdb folder or .tar.gz, a CSV/TSV/JSONL/fastText file (gzipped or not), or a class-per-folder directory",
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
@click.option(
    "--text-column", default=None, help="text column of a CSV/TSV/JSONL file: a name or 0-based index (autodetected)"
)
@click.option(
    "--label-column", default=None, help="label column of a CSV/TSV/JSONL file: a name or 0-based index (autodetected)"
)
@file_options("--data and --test-data")
@multi_label_option
@click.option(
    "--stream",
    is_flag=True,
    help="for a file larger than memory: vectorize it once, streamed, into a memory-mapped token file cached in LSTMKIT_HOME (keyed by the data's SHA-256 and the settings), and train from it",
)
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
    help="unlabeled text for --self-training, repeatable: an aclImdb folder/.tar.gz (its 50k unsup reviews), a .txt file (one text per line), a CSV/TSV/JSONL/fastText file's texts (format sniffed, gzipped or not), or a folder of .txt files",
)
@process_options
@_preset_options
def train(
    data,
    test_data,
    preset,
    out,
    text_column,
    label_column,
    file_format,
    header,
    multi_label,
    stream,
    resume,
    overwrite,
    quiet,
    pretrained,
    unlabeled,
    processes,
    coordinator,
    num_processes,
    process_id,
    **overrides,
):
    """Train a text classifier and write its model directory.

    Every preset setting can be overridden by its flag, e.g. --epochs 3 --max-tokens 20000.
    """
    from lstmkit.cli.processes import start_processes
    from lstmkit.tasks.presets import resolve

    config = resolve(preset, **overrides)
    options = {
        "resume": resume,
        "overwrite": overwrite,
        "test_data": test_data,
        "text_column": text_column,
        "label_column": label_column,
        "file_format": file_format,
        "header": header,
        "multi_label": multi_label,
        "pretrained": pretrained,
        "unlabeled": unlabeled,
        "stream": stream,
    }
    if start_processes(processes, coordinator, num_processes, process_id, config["batch_size"]):
        from lstmkit.cli.processes import run_as_one_of_several

        run_as_one_of_several(_train, config, data, out, quiet, **options)
    else:
        _train(config, data, out, quiet, **options)


def _train(config, data, out, quiet, *, resume, **options):
    """`train`'s work in this process: the run, and Ctrl-C as the hint to resume."""
    from lstmkit.tasks.run import train_run

    enable_compile_cache()
    try:
        train_run(
            config,
            data,
            out,
            resume=resume,
            progress=not quiet,
            **options,
        )
    except KeyboardInterrupt:
        from lstmkit.io.output_folder import directory_kind

        if directory_kind(out) == "model":
            click.echo(
                f"\ninterrupted: the last finished epoch's checkpoint is intact in {out}; continue with --resume",
                err=True,
            )
        else:
            click.echo(f"\ninterrupted before the first epoch ended: nothing was saved in {out}", err=True)
        sys.exit(130)


def _lm_default(key):
    from lstmkit.tasks.presets import LMConfig

    return getattr(LMConfig(), key)


@click.command("pretrain")
@click.option(
    "--data",
    default=None,
    help="labelled data as `train --data` reads it; only its training part is used (imdb: the train split)",
)
@click.option(
    "--unlabeled",
    multiple=True,
    help="more text, repeatable: imdb or an aclImdb folder/.tar.gz (its 50k unsup reviews), a .txt file (one text per line), a CSV/TSV/JSONL/fastText file's texts (format sniffed, gzipped or not), or a folder of .txt files",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(),
    help="pretrained directory to write (use it with `lstmkit train --pretrained`)",
)
@click.option("--overwrite", is_flag=True, help="replace the pretrained directory already at --out")
@click.option(
    "--text-column", default=None, help="text column of CSV/TSV/JSONL sources: a name or 0-based index (autodetected)"
)
@file_options("--data")
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
def pretrain_command(data, unlabeled, out, overwrite, text_column, file_format, header, quiet, **settings):
    """Pretrain the Embedding and first LSTM layer as a language model on unlabeled text.

    The defaults match the default preset's sizes, so `lstmkit train --pretrained OUT` adopts
    the vocabulary, embedding and LSTM weights. Example:

        lstmkit pretrain --data imdb --unlabeled imdb --out runs/lm --epochs 1
    """
    from lstmkit.tasks.pretrain import pretrain_run

    enable_compile_cache()
    pretrain_run(
        data,
        unlabeled,
        out,
        text_column=text_column,
        file_format=file_format,
        header=header,
        progress=not quiet,
        overwrite=overwrite,
        **settings,
    )
