"""`lstmkit cell --sequence`: a short sequence through the LSTM and a plain tanh RNN, the forward and
backward per step as tables, and how much gradient of the last output reaches each input, as a
table and a PNG: the vanishing gradient, and why the LSTM's cell escapes it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lstmkit.errors import LstmkitError


def show_sequence(xs, weights, rnn_weights, hidden, seed, png, as_json):
    """Compute with `lstmkit.core.through_time`, then print (text or JSON) and draw (with png)."""
    if png is not None and Path(png).suffix.lower() != ".png":
        raise LstmkitError(f"--png {png}: the plot is a PNG; give a file name ending in .png")
    report = sequence_report(xs, weights, rnn_weights, hidden, seed)
    if png is not None:
        report["png"] = str(draw_png(report, png))
    if as_json:
        click.echo(json.dumps(report))
    else:
        _print_report(report)


def sequence_report(xs, weights, rnn_weights, hidden, seed):
    """Every number of the sequence, forward and backward, LSTM and RNN, as one JSON-able dict.

    With one unit each value is a number, with H units a list of H numbers.
    """
    import jax
    import jax.numpy as jnp

    from lstmkit.cli.compile_cache import enable_compile_cache
    from lstmkit.core import through_time as tt

    x = jnp.asarray(xs, jnp.float64)[:, None]  # (T, E = 1)
    if hidden == 1:
        lstm_weights = {**tt.LSTM_WEIGHTS, **weights}
        lstm, rnn = tt.scalar_lstm_params(lstm_weights), tt.scalar_rnn_params(rnn_weights)
        described = {"lstm": lstm_weights, "rnn": rnn_weights}
    else:
        lstm, rnn = tt.random_params(jax.random.key(seed), hidden)
        lstm, rnn = (jax.tree.map(lambda a: a.astype(jnp.float64), p) for p in (lstm, rnn))
        described = {
            "lstm": f"Keras initialisation, key {seed}, forget bias {tt.FORGET_BIAS}",
            "rnn": "Keras SimpleRNN's",
        }
    enable_compile_cache()  # the scans compile in seconds; a second run with as many inputs reuses them
    lstm_part, rnn_part, checks = jax.jit(tt.sequence_gradients)(lstm, rnn, x)
    steps, (dh, dc, grads) = lstm_part
    rnn_h, (rnn_dh, rnn_dx) = rnn_part
    lstm_check, rnn_check = checks

    one = (lambda a: float(a[0])) if hidden == 1 else (lambda a: [float(u) for u in a])
    forward = [
        {"t": t, "x": xs[t], **{k: one(getattr(steps.gates, k)[t]) for k in "ifgo"}, "c": one(steps.c[t]), "h": one(steps.h[t])}
        for t in range(len(xs))
    ]  # fmt: skip
    names = ("dc_tot", "do", "di", "df", "dg", "dc_prev", "dh_prev")
    backward = [
        {"t": t, "dh": one(dh[t]), "dc": one(dc[t]), **{k: one(getattr(grads, k)[t]) for k in names}, "dx": float(grads.dx[t, 0])}
        for t in reversed(range(len(xs)))
    ]  # fmt: skip
    return {
        "sequence": list(xs),
        "hidden": hidden,
        "last_output": "h_T" if hidden == 1 else "sum of h_T's units",
        "weights": described,
        "lstm": {
            "forward": forward,
            "backward": backward,
            "dy_dx": [float(a) for a in grads.dx[:, 0]],
            "dy_dx_jax_grad": [float(a) for a in lstm_check[:, 0]],
        },
        "rnn": {
            "h": [one(a) for a in rnn_h],
            "dh": [one(a) for a in rnn_dh],
            "dy_dx": [float(a) for a in rnn_dx[:, 0]],
            "dy_dx_jax_grad": [float(a) for a in rnn_check[:, 0]],
        },
        "png": None,
    }


def _summary(value, gate=False):
    """A table cell: the number for one unit; the mean (gates) or the norm (states, gradients) for H."""
    if isinstance(value, float):
        return value
    if gate:
        return sum(value) / len(value)
    return sum(u * u for u in value) ** 0.5


def _print_report(r):
    lstm, rnn, T = r["lstm"], r["rnn"], len(r["sequence"])
    many = r["hidden"] > 1
    mean, norm = ("mean ", "|") if many else ("", "")
    end = "|" if many else ""
    click.echo(
        f"a {'one-unit' if not many else str(r['hidden']) + '-unit'} LSTM and a tanh RNN over {T} inputs, from h = c = 0"
    )
    click.echo(f"LSTM weights: {_weights(r['weights']['lstm'])}")
    click.echo(f"RNN: h_t = tanh(Wx*x_t + Wh*h_prev + b), weights: {_weights(r['weights']['rnn'])}\n")
    click.echo("forward, step by step" + (" (gates: the mean over the units; states: the norm)" if many else ""))
    heads = [f"{mean}{k}" for k in "ifgo"] + [f"{norm}c{end}", f"{norm}h{end}", f"RNN {norm}h{end}"]
    click.echo(f"{'t':>3} {'x':>6} " + " ".join(f"{h:>9}" for h in heads))
    for row, rnn_h in zip(lstm["forward"], rnn["h"]):
        cells = [_summary(row[k], gate=True) for k in "ifgo"] + [
            _summary(row["c"]),
            _summary(row["h"]),
            _summary(rnn_h),
        ]
        click.echo(f"{row['t']:>3} {row['x']:>6g} " + " ".join(f"{c:>9.4f}" for c in cells))
    click.echo(
        f"\nbackward, from the last output y = {r['last_output']} (dh = 1, dc = 0) back to the first input;\n"
        "dh, dc arrive from the step after; dc_prev = dc_tot*f is what the cell carries back; dx = dy/dx_t"
    )
    heads = [
        f"{norm}dh{end}",
        f"{norm}dc{end}",
        f"{norm}dc_tot{end}",
        f"{mean}f",
        f"{norm}dc_prev{end}",
        "dx",
        f"RNN {norm}dh{end}",
    ]
    click.echo(f"{'t':>3} " + " ".join(f"{h:>11}" for h in heads))
    for row in lstm["backward"]:
        t = row["t"]
        cells = [_summary(row["dh"]), _summary(row["dc"]), _summary(row["dc_tot"])]
        cells += [
            _summary(lstm["forward"][t]["f"], gate=True),
            _summary(row["dc_prev"]),
            row["dx"],
            _summary(rnn["dh"][t]),
        ]
        click.echo(f"{t:>3} " + " ".join(f"{c:>11.3e}" if k != 3 else f"{c:>11.4f}" for k, c in enumerate(cells)))
    click.echo("\nhow much gradient of the last output reaches each input, dy/dx_t:")
    click.echo(f"{'t':>3} {'x':>6} {'LSTM':>11} {'RNN':>11} {'|LSTM/RNN|':>11}")
    for t in range(T):
        a, b = lstm["dy_dx"][t], rnn["dy_dx"][t]
        ratio = f"{abs(a / b):>11.1e}" if b != 0 else f"{'inf':>11}"
        click.echo(f"{t:>3} {r['sequence'][t]:>6g} {a:>11.3e} {b:>11.3e} {ratio}")
    worst = max(_relative(lstm["dy_dx"], lstm["dy_dx_jax_grad"]), _relative(rnn["dy_dx"], rnn["dy_dx_jax_grad"]))
    click.echo(
        f"\nby hand against jax.grad of the whole sequence's last output: largest relative difference {worst:.1e}"
    )
    a, b = abs(lstm["dy_dx"][0]), abs(rnn["dy_dx"][0])
    ratio = f"{a / b:.1e}" if b else "inf"
    click.echo(
        f"at the first input |dy/dx_0| is {a:.1e} through the LSTM and {b:.1e} through the RNN: a ratio of {ratio}"
    )
    if r["png"]:
        click.echo(f"plot: {r['png']}")


def _weights(w):
    return w if isinstance(w, str) else ", ".join(f"{k.removeprefix('rnn_')}={v:g}" for k, v in w.items())


def _relative(mine, reference):
    """The largest |mine - reference| / |reference| (the gradients span many orders of magnitude)."""
    return max(abs(a - b) / abs(b) if b != 0 else abs(a) for a, b in zip(mine, reference))


def draw_png(r, path):
    """Two panels over the steps: |dy/dx_t| on a log scale (LSTM and RNN), and the factor each
    multiplies the carried gradient by per step (the LSTM's forget gate, the RNN's Wh*(1 - h^2)).
    Written atomically; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lstmkit.atomic import write_with

    T = len(r["sequence"])
    steps = list(range(T))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True, height_ratios=[2, 1])
    for name, color, style in (("lstm", "tab:blue", "o-"), ("rnn", "tab:red", "s-")):
        values = [max(abs(v), 1e-300) for v in r[name]["dy_dx"]]
        top.semilogy(steps, values, style, color=color, label=f"{name.upper()}  |dy/dx_t|")
    top.set_ylabel("|dy/dx_t|  (log scale)")
    top.set_title(
        f"How much of the last output's gradient reaches input t ({r['hidden']} unit{'s' * (r['hidden'] > 1)}, T = {T})"
    )
    top.grid(alpha=0.3, which="both")
    top.legend(loc="lower right")
    forget = [_summary(row["f"], gate=True) for row in r["lstm"]["forward"]]
    bottom.plot(steps, forget, "o-", color="tab:blue", label="LSTM: forget gate f_t (the cell's factor)")
    if r["hidden"] == 1:
        wh = r["weights"]["rnn"]["rnn_wh"]
        factor = [abs(wh) * (1 - h * h) for h in r["rnn"]["h"]]
        bottom.plot(steps, factor, "s-", color="tab:red", label="RNN: |Wh|*(1 - h_t²)")
    else:
        factor = [sum(1 - u * u for u in h) / len(h) for h in r["rnn"]["h"]]
        bottom.plot(steps, factor, "s-", color="tab:red", label="RNN: mean 1 - h_t²")
    bottom.set_ylim(0, 1.4)  # room above the points for the legend
    bottom.set_yticks([0, 0.25, 0.5, 0.75, 1])
    bottom.set_xlabel("input t (the last output is read after the last one)")
    bottom.set_ylabel("factor per step")
    bottom.grid(alpha=0.3)
    bottom.legend(loc="upper center", ncol=2, fontsize=8)
    fig.tight_layout()
    try:
        return write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"), suffix=".png")
    finally:
        plt.close(fig)
