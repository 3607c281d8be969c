"""`lstmkit cell`: one LSTM neuron, step by step, with the seed's numbers as defaults; its backward
step (`--backward`), and a short sequence beside a plain RNN (`--sequence`)."""

from __future__ import annotations

import json
import math

import click
from click.core import ParameterSource

from lstmkit.errors import LstmkitError
from lstmkit.version import JSON_SCHEMA_VERSION

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

STATE_FLAGS = ("x", "h_prev", "c_prev")
SEQUENCE_ONLY = ("hidden", "seed", "png", "rnn_wx", "rnn_wh", "rnn_b")


def _cell_options(f):
    for name in reversed(list(CELL_DEFAULTS)):
        flag = "--" + name.replace("_", "-")
        f = click.option(flag, name, type=float, default=CELL_DEFAULTS[name], show_default=True)(f)
    return f


def _sequence_options(f):
    options = [
        click.option("--sequence", help="inputs x_0,x_1,... (or 'default': 25 of them): run them through the "
                     "LSTM and a plain tanh RNN, forward and backward, and show how far back the gradient reaches"),
        click.option("--hidden", type=int, default=1, show_default=True, help="with --sequence: units (above 1, "
                     "Keras-initialised random weights, the forget bias at 2.5)"),
        click.option("--seed", type=int, default=0, show_default=True, help="with --hidden N > 1: the random key"),
        click.option("--png", type=click.Path(dir_okay=False), help="with --sequence: draw the gradients per step here"),
        click.option("--rnn-wx", type=float, default=1.0, show_default=True, help="with --sequence: the RNN's input weight"),
        click.option("--rnn-wh", type=float, default=1.0, show_default=True, help="with --sequence: the RNN's recurrent weight"),
        click.option("--rnn-b", type=float, default=0.0, show_default=True, help="with --sequence: the RNN's bias"),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


@click.command()
@_cell_options
@click.option("--backward", is_flag=True, help="then every derivative of one backward step, checked against jax.grad")
@click.option("--dh", type=float, default=1.0, show_default=True, help="with --backward: the gradient arriving at h")
@click.option("--dc", type=float, default=0.0, show_default=True, help="with --backward: the gradient arriving at c")
@_sequence_options
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of the walk-through")
@click.pass_context
def cell(ctx, as_json, backward, dh, dc, sequence, hidden, seed, png, rnn_wx, rnn_wh, rnn_b, **v):
    """One LSTM neuron, step by step: the seed's walk-through done right.

    Scalar weights per gate: Wx* multiplies x, Wh* multiplies h_prev, b* is the bias. The
    candidate's weights keep the seed's names (Wxc, Whc, bc). Defaults are the seed's numbers;
    the output gate, which the seed never reached, defaults to Wxo=0.5, Who=-0.02, bo=0.

    --backward reads the step backward from dh and dc. --sequence runs the neuron over several
    inputs from h = c = 0 (the seed's weights with the forget bias at 2.5 unless flags say
    otherwise) beside a tanh RNN, and shows how much gradient of the last output reaches each
    input (docs/lstm.md).
    """
    import jax

    given = {name for name in ctx.params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
    _check_combination(given, sequence is not None, backward, hidden)
    with jax.enable_x64(True):  # float64: the hand-written and jax.grad numbers agree to ~1e-16
        if sequence is not None:
            from lstmkit.cli.neuron_sequence import show_sequence

            weights = {k: v[k] for k in given if k in CELL_DEFAULTS}
            rnn = {"rnn_wx": rnn_wx, "rnn_wh": rnn_wh, "rnn_b": rnn_b}
            show_sequence(_parse_sequence(sequence), weights, rnn, hidden, seed, png, as_json)
            return
        _walk_through(v, backward, dh, dc, as_json)


def _check_combination(given, sequence, backward, hidden):
    """A clear line for flags that do not go together."""
    if {"dh", "dc"} & given and not backward:
        raise LstmkitError("--dh and --dc set the gradients the backward step starts from; add --backward")
    if sequence and backward:
        raise LstmkitError("--sequence shows the backward of every step already; drop --backward")
    if sequence and set(STATE_FLAGS) & given:
        raise LstmkitError("--sequence reads x from its list and starts from h = c = 0; drop --x, --h-prev, --c-prev")
    if not sequence and set(SEQUENCE_ONLY) & given:
        flags = ", ".join("--" + n.replace("_", "-") for n in SEQUENCE_ONLY if n in given)
        verb = "goes" if "," not in flags else "go"
        raise LstmkitError(f"{flags} {verb} with --sequence; add --sequence default (or your inputs)")
    if hidden < 1:
        raise LstmkitError(f"--hidden {hidden}: give a number of units of 1 or more")
    scalar_flags = sorted((set(CELL_DEFAULTS) - set(STATE_FLAGS) | {"rnn_wx", "rnn_wh", "rnn_b"}) & given)
    if sequence and hidden > 1 and scalar_flags:
        flag = "--" + scalar_flags[0].replace("_", "-")
        raise LstmkitError(f"{flag} sets a one-unit weight, and --hidden {hidden} draws random ones; drop one of them")


def _parse_sequence(text):
    """The inputs of --sequence: 'default', or numbers separated by commas."""
    from lstmkit.core.through_time import DEFAULT_SEQUENCE

    if text.strip().lower() == "default":
        return list(DEFAULT_SEQUENCE)
    values = []
    for part in text.split(","):
        try:
            values.append(float(part))
        except ValueError:
            raise LstmkitError(
                f"--sequence {text!r}: {part.strip()!r} is not a number; give numbers separated by commas, "
                "e.g. --sequence 0.5,-1,2 (or --sequence default)"
            ) from None
    if not all(math.isfinite(a) for a in values):
        raise LstmkitError(f"--sequence {text!r}: give finite numbers (no nan or inf)")
    return values


def _walk_through(v, backward, dh, dc, as_json):
    """The forward step as formulas with their numbers, then (with backward) the backward step."""
    import jax.numpy as jnp

    from lstmkit.core.cell import lstm_cell, split_gates
    from lstmkit.core.through_time import scalar_lstm_params

    params = scalar_lstm_params(v)  # E = H = 1, gate order i, f, g, o
    x, h_prev, c_prev = jnp.array([v["x"]]), jnp.array([v["h_prev"]]), jnp.array([v["c_prev"]])
    h, c, gates = lstm_cell(params, x, h_prev, c_prev)
    z = x @ params["W_x"] + h_prev @ params["W_h"] + params["b"]
    pre = dict(zip("ifgo", (float(a[0]) for a in split_gates(z))))
    act = {"i": float(gates.i[0]), "f": float(gates.f[0]), "g": float(gates.g[0]), "o": float(gates.o[0])}
    out = {**act, "c": float(c[0]), "h": float(h[0]), "preactivation": pre, "inputs": dict(v)}
    rows = None
    if backward:
        from lstmkit.cli.neuron_backward import backward_rows

        rows = backward_rows(params, v, act, out["c"], dh, dc)
        out["backward"] = {"dh": dh, "dc": dc, "derivatives": {r["name"]: r for r in rows}}
        out["backward"]["max_abs_difference"] = max(abs(r["value"] - r["jax_grad"]) for r in rows)
    if as_json:
        click.echo(json.dumps({"schema_version": JSON_SCHEMA_VERSION, **out}))
        return
    _print_forward(v, pre, act, out)
    if backward:
        from lstmkit.cli.neuron_backward import print_backward

        print_backward(rows, dh, dc)


def _print_forward(v, pre, act, out):
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
