"""The flags that say how to read the user's files: --format, --header/--no-header and --multi-label."""

from __future__ import annotations

import click

FORMAT_CHOICES = ("csv", "tsv", "jsonl", "fasttext")


def file_options(what: str, *, txt: bool = False):
    """--format and --header/--no-header for the files `what` names (None: sniffed, detected)."""

    def decorate(f):
        choices = (*FORMAT_CHOICES, "txt") if txt else FORMAT_CHOICES
        f = click.option(
            "--header/--no-header",
            "header",
            default=None,
            help=f"whether the first row of a CSV/TSV in {what} names its columns (default: detected); "
            "without a header, columns are 0-based indexes: --text-column 1 --label-column 0",
        )(f)
        return click.option(
            "--format",
            "file_format",
            type=click.Choice(choices),
            default=None,
            help=f"the format of {what} (default: sniffed from the content; gzip is always recognised)",
        )(f)

    return decorate


def multi_label_option(f):
    """--multi-label: read every text's labels as a set (None when not given: detected from the file)."""
    return click.option(
        "--multi-label",
        "multi_label",
        flag_value=True,
        default=None,
        help="each text has a set of labels (one sigmoid per label); detected from several __label__s on a "
        "fastText line or a JSON list, and needed for CSV/TSV, whose label cells join labels with '|'",
    )(f)
