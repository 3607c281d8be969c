"""`lstmkit cell --backward`: one backward step of the neuron, every derivative named, with its
formula, its numbers, and `jax.grad`'s value beside it."""

from __future__ import annotations

import click

# (section title, first derivative's name) for the printout: the forward's equations, bottom-up.
SECTIONS = {
    "do": "h = o*tanh(c), read backward:",
    "di": "c = f*c_prev + i*g, read backward:",
    "dz_i": "the activations, read backward (sigmoid' = s(1 - s), tanh' = 1 - g^2):",
    "dx": "z = Wx*x + Wh*h_prev + b for each gate, read backward:",
    "dWxi": "the weights and biases (dWx = dz*x, dWh = dz*h_prev, db = dz), gate by gate:",
}
SEED_NAME = {"i": "i", "f": "f", "g": "c", "o": "o"}  # the candidate's weights keep the seed's names


def backward_rows(params, v, act, c, dh, dc):
    """Every derivative of the step as {"name", "formula", "numbers", "value", "jax_grad"}.

    v: the flag values (weights, x, h_prev, c_prev); act: the gates; c: the new cell.
    """
    import jax.numpy as jnp

    from lstmkit.core.cell import Gates, lstm_cell_backward, lstm_cell_backward_autodiff

    x, h_prev, c_prev = (jnp.array([v[k]]) for k in ("x", "h_prev", "c_prev"))
    gates = Gates(*(jnp.array([act[k]]) for k in "ifgo"))
    dh_, dc_ = jnp.array([dh]), jnp.array([dc])
    hand = lstm_cell_backward(params, x, h_prev, c_prev, jnp.array([c]), gates, dh_, dc_)
    auto = lstm_cell_backward_autodiff(params, x, h_prev, c_prev, dh_, dc_)
    i, f, g, o = (act[k] for k in "ifgo")
    n = lambda a: f"{float(a.reshape(-1)[0]):.6g}"  # a one-element array as the printout writes it
    d = {name: n(getattr(hand, name)) for name in hand._fields}
    cp, hp, xv = v["c_prev"], v["h_prev"], v["x"]
    specs = [
        ("do", "dh*tanh(c)", f"{dh:g}*tanh({c:.6g})"),
        ("dc_tot", "dc + dh*o*(1 - tanh(c)^2)", f"{dc:g} + {dh:g}*{o:.6g}*(1 - tanh({c:.6g})^2)"),
        ("di", "dc_tot*g", f"{d['dc_tot']}*{_factor(f'{g:.6g}')}"),
        ("df", "dc_tot*c_prev", f"{d['dc_tot']}*{_factor(f'{cp:g}')}"),
        ("dg", "dc_tot*i", f"{d['dc_tot']}*{i:.6g}"),
        ("dc_prev", "dc_tot*f", f"{d['dc_tot']}*{f:.6g}"),
        ("dz_i", "di*i*(1 - i)", f"{d['di']}*{i:.6g}*(1 - {i:.6g})"),
        ("dz_f", "df*f*(1 - f)", f"{d['df']}*{f:.6g}*(1 - {f:.6g})"),
        ("dz_g", "dg*(1 - g^2)", f"{d['dg']}*(1 - {_factor(f'{g:.6g}')}^2)"),
        ("dz_o", "do*o*(1 - o)", f"{d['do']}*{o:.6g}*(1 - {o:.6g})"),
        ("dx", "dz_i*Wxi + dz_f*Wxf + dz_g*Wxc + dz_o*Wxo", _dot(d, v, "wx")),
        ("dh_prev", "dz_i*Whi + dz_f*Whf + dz_g*Whc + dz_o*Who", _dot(d, v, "wh")),
    ]
    rows = [_row(name, formula, numbers, getattr(hand, name), getattr(auto, name)) for name, formula, numbers in specs]
    for k, gate in enumerate("ifgo"):
        s, dz = SEED_NAME[gate], d[f"dz_{gate}"]
        rows += [
            _row(f"dWx{s}", f"dz_{gate}*x", f"{dz}*{_factor(f'{xv:g}')}", hand.dW_x[0, k], auto.dW_x[0, k]),
            _row(f"dWh{s}", f"dz_{gate}*h_prev", f"{dz}*{_factor(f'{hp:g}')}", hand.dW_h[0, k], auto.dW_h[0, k]),
            _row(f"db{s}", f"dz_{gate}", dz, hand.db[k], auto.db[k]),
        ]
    return rows


def _dot(d, v, prefix):
    """dz_i*W?i + ... with the numbers in."""
    return " + ".join(f"{d[f'dz_{gate}']}*{_factor(f'{v[prefix + SEED_NAME[gate]]:g}')}" for gate in "ifgo")


def _factor(text):
    """A number as the right-hand factor of a product: in brackets when negative, 0.5*(-0.02)."""
    return f"({text})" if text.startswith("-") else text


def _row(name, formula, numbers, value, reference):
    value, reference = float(value.reshape(-1)[0]), float(reference.reshape(-1)[0])
    return {"name": name, "formula": formula, "numbers": numbers, "value": value, "jax_grad": reference}


def print_backward(rows, dh, dc):
    """The rows as the walk-through prints them: formula = numbers = value | jax.grad's value."""
    click.echo(f"\nbackward: dh = {dh:g} arrives at h (from the loss), dc = {dc:g} at c (from the next step)")
    for r in rows:
        if r["name"] in SECTIONS:
            click.echo(f"\n{SECTIONS[r['name']]}")
        line = f"{r['name']} = {r['formula']}"
        if r["numbers"] != f"{r['value']:.6g}":
            line += f" = {r['numbers']}"
        click.echo(f"  {line} = {r['value']:.6g}    | jax.grad {r['jax_grad']:.6g}")
    worst = max(abs(r["value"] - r["jax_grad"]) for r in rows)
    click.echo(
        f"\nall {len(rows)} derivatives by hand agree with jax.grad of the forward: largest difference {worst:.1e}"
    )
