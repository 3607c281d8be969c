"""The `lstmkit` command line: a thin layer over the Python API.

User mistakes raise `LstmkitError` (or a click usage error) and end as one line on stderr with
exit status 2; anything else is a bug and keeps its traceback.

The group is here; its commands live one module per kind: `neuron` (cell), `training` (train,
pretrain), `tuning` (tune), `saved_model` (evaluate, predict, explain, plot), `inspecting` (inspect), `exporting` (export), `serving` (serve) and `machine` (info, build-kernel).
"""

from __future__ import annotations

import click

from lstmkit.cli.exporting import export_command
from lstmkit.cli.inspecting import inspect_command
from lstmkit.cli.machine import build_kernel, info
from lstmkit.cli.neuron import CELL_DEFAULTS, GATE_MEANING, cell
from lstmkit.cli.saved_model import evaluate, explain_command, plot, predict
from lstmkit.cli.serving import serve_command
from lstmkit.cli.training import pretrain_command, train
from lstmkit.cli.tuning import tune_command
from lstmkit.errors import LstmkitError

__all__ = ["CELL_DEFAULTS", "GATE_MEANING", "main"]


class _UserError(click.ClickException):
    exit_code = 2


# click 8.2 and later signal "no arguments: show the help" with a UsageError of its own
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _one_line(e: click.UsageError) -> _UserError:
    """A usage error as one line (click prints the usage, a hint and the error on four)."""
    where = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
    return _UserError(" ".join(e.format_message().split()) + where)


class _Group(click.Group):
    """A click group that turns LstmkitError and usage errors into one clean line, exit status 2."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except _NO_ARGS_IS_HELP:  # plain `lstmkit`: the help, as click shows it
            raise
        except click.UsageError as e:
            raise _one_line(e) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LstmkitError as e:
            raise _UserError(str(e)) from None
        except click.UsageError as e:
            raise _one_line(e) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lstmkit")
def main():
    """lstmkit: understand, train and use LSTM text classifiers."""


for _command in (
    cell,
    inspect_command,
    train,
    evaluate,
    predict,
    plot,
    explain_command,
    info,
    build_kernel,
    pretrain_command,
    serve_command,
    export_command,
    tune_command,
):
    main.add_command(_command)
