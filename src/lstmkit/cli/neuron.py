"""`lstmkit cell`: one LSTM neuron, step by step, with the seed's numbers as defaults."""

from __future__ import annotations

import json

import click

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


def _cell_options(f):
    for name in reversed(list(CELL_DEFAULTS)):
        flag = "--" + name.replace("_", "-")
        f = click.option(flag, name, type=float, default=CELL_DEFAULTS[name], show_default=True)(f)
    return f


@click.command()
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
        click.echo(json.dumps({"schema_version": JSON_SCHEMA_VERSION, **out}))
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
