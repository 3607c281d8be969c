"""`lstmkit cell --backward` and `--sequence`: every printed derivative against centred finite
differences of the cell written here with `math` and against jax.grad (float64); the sequence's
gradients against jax.grad of the whole sequence; the PNG; the flags that do not go together."""

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

from helpers import textbook_input_gradients
from lstmkit.cli import CELL_DEFAULTS, main

FLAGS = {"x": 0.7, "h_prev": -0.4, "c_prev": 1.5, "wxf": -1.0, "bf": 0.3, "whi": 1.5, "wxc": -0.7, "bo": -0.5}
WEIGHTS = [k for k in CELL_DEFAULTS if k not in ("x", "h_prev", "c_prev")]


def run(*args):
    return CliRunner().invoke(main, ["cell", *args])


def flag_args(flags):
    return [a for k, v in flags.items() for a in ("--" + k.replace("_", "-"), str(v))]


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def loss_of(v, dh, dc, **override):
    """dh*h + dc*c of the scalar cell, with any pre-activation (z_*) or gate (i, f, g, o) or the
    new cell (c) replaced by a given value, so that finite differences reach every derivative."""
    z = {k: v[f"wx{s}"] * v["x"] + v[f"wh{s}"] * v["h_prev"] + v[f"b{s}"] for k, s in zip("ifgo", "ifco")}
    z.update({k[2:]: val for k, val in override.items() if k.startswith("z_")})
    gate = {k: (math.tanh if k == "g" else sigmoid)(z[k]) for k in "ifgo"}
    gate.update({k: val for k, val in override.items() if k in "ifgo"})
    c = override.get("c", gate["f"] * v["c_prev"] + gate["i"] * gate["g"])
    return dh * gate["o"] * math.tanh(c) + dc * c


def central(fun, at, eps=1e-6):
    return (fun(at + eps) - fun(at - eps)) / (2 * eps)


def expected_derivatives(v, dh, dc):
    """Every derivative the command names, by centred differences of `loss_of`."""
    z = {k: v[f"wx{s}"] * v["x"] + v[f"wh{s}"] * v["h_prev"] + v[f"b{s}"] for k, s in zip("ifgo", "ifco")}
    gate = {k: (math.tanh if k == "g" else sigmoid)(z[k]) for k in "ifgo"}
    c = gate["f"] * v["c_prev"] + gate["i"] * gate["g"]
    want = {"dc_tot": central(lambda a: loss_of(v, dh, dc, c=a), c)}
    for k in "ifgo":
        want[f"d{k}"] = central(lambda a, k=k: loss_of(v, dh, dc, **{k: a}), gate[k])
        want[f"dz_{k}"] = central(lambda a, k=k: loss_of(v, dh, dc, **{f"z_{k}": a}), z[k])
    for name, key in (("dx", "x"), ("dh_prev", "h_prev"), ("dc_prev", "c_prev")):
        want[name] = central(lambda a, key=key: loss_of({**v, key: a}, dh, dc), v[key])
    for key in WEIGHTS:  # wxf -> dWxf, bf -> dbf
        name = "dW" + key[1:] if key.startswith("w") else "d" + key
        want[name] = central(lambda a, key=key: loss_of({**v, key: a}, dh, dc), v[key])
    return want


@pytest.mark.parametrize("dh, dc", [(1.0, 0.0), (-0.6, 0.8)])
def test_every_derivative_against_finite_differences_and_jax_grad(dh, dc):
    r = run("--backward", "--dh", str(dh), "--dc", str(dc), "--json", *flag_args(FLAGS))
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)["backward"]
    want = expected_derivatives({**CELL_DEFAULTS, **FLAGS}, dh, dc)
    assert set(out["derivatives"]) == set(want)  # 24 names: do ... dh_prev and 16 weights and biases
    for name, w in want.items():
        got = out["derivatives"][name]
        assert got["value"] == pytest.approx(w, rel=1e-6, abs=1e-8), name
        assert got["jax_grad"] == pytest.approx(got["value"], rel=1e-12, abs=1e-15), name
        assert got["formula"]
    assert out["max_abs_difference"] < 1e-14


def test_backward_walkthrough_names_every_derivative_with_its_check():
    r = run("--backward", "--x", "1", "--h-prev", "0.5")
    assert r.exit_code == 0, r.output
    assert "h = o*tanh(c) = " in r.output  # the forward first
    for line in (
        "do = dh*tanh(c) = 1*tanh(",
        "dc_tot = dc + dh*o*(1 - tanh(c)^2)",
        "dz_g = dg*(1 - g^2)",
        "dWhc = dz_g*h_prev",
    ):
        assert line in r.output
    assert r.output.count("| jax.grad ") == 24
    assert "all 24 derivatives by hand agree with jax.grad" in r.output
    want = expected_derivatives({**CELL_DEFAULTS, "x": 1.0, "h_prev": 0.5}, 1.0, 0.0)
    assert f"= {want['dx']:.6g}    | jax.grad" in r.output  # dx, printed to 6 digits


def test_seed_defaults_saturate_and_block_the_gates_gradients():
    out = json.loads(run("--backward", "--json").output)["backward"]["derivatives"]
    assert out["dz_f"]["value"] == out["dz_i"]["value"] == out["dz_g"]["value"] == 0.0  # f = i = g = 1
    assert out["dWhf"]["value"] == 0.0 and out["dz_o"]["value"] != 0.0


def test_sequence_gradients_png_and_contrast(tmp_path, x64):
    png = tmp_path / "grad.png"
    r = run("--sequence", "default", "--json", "--png", str(png))
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    xs = jnp.asarray(out["sequence"])[:, None]
    w = out["weights"]["lstm"]
    lstm = {
        "W_x": jnp.array([[w["wxi"], w["wxf"], w["wxc"], w["wxo"]]]),
        "W_h": jnp.array([[w["whi"], w["whf"], w["whc"], w["who"]]]),
        "b": jnp.array([w["bi"], w["bf"], w["bc"], w["bo"]]),
    }
    rnn = {
        k: jnp.array(v).reshape(s)
        for k, v, s in zip(("W_x", "W_h", "b"), out["weights"]["rnn"].values(), ((1, 1), (1, 1), (1,)))
    }
    want_lstm, want_rnn = textbook_input_gradients(lstm, rnn, xs)
    np.testing.assert_allclose(out["lstm"]["dy_dx"], want_lstm[:, 0], rtol=1e-10)
    np.testing.assert_allclose(out["rnn"]["dy_dx"], want_rnn[:, 0], rtol=1e-10)
    assert [row["t"] for row in out["lstm"]["backward"]] == list(range(len(xs)))[::-1]  # from the last back
    assert abs(out["lstm"]["dy_dx"][0]) > 1e6 * abs(out["rnn"]["dy_dx"][0])
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 400 and height > 300
    assert [p.name for p in tmp_path.iterdir()] == ["grad.png"]  # no temporary file left behind


def test_sequence_text_and_hidden_units():
    r = run("--sequence", "0.5,-1,2,0,1", "--hidden", "3", "--seed", "1")
    assert r.exit_code == 0, r.output
    for part in (
        "a 3-unit LSTM",
        "forward, step by step",
        "backward, from the last output",
        "|LSTM/RNN|",
        "largest relative difference",
    ):
        assert part in r.output
    worst = float(r.output.split("largest relative difference ")[1].split()[0])
    assert worst < 1e-10
    one = run("--sequence", "0.5,-1,2", "--bf", "-3", "--json")  # a closed forget gate: the weight flag counts
    assert json.loads(one.output)["weights"]["lstm"]["bf"] == -3.0


@pytest.mark.parametrize(
    "args, says",
    [
        (["--sequence", "1,a"], "'a' is not a number"),
        (["--sequence", "1,nan"], "finite"),
        (["--sequence", "1,2", "--backward"], "drop --backward"),
        (["--sequence", "1,2", "--h-prev", "1"], "drop --x, --h-prev, --c-prev"),
        (["--sequence", "1,2", "--hidden", "2", "--bf", "1"], "--bf sets a one-unit weight"),
        (["--sequence", "1,2", "--hidden", "0"], "--hidden 0"),
        (["--sequence", "1,2", "--png", "plot.svg"], "ending in .png"),
        (["--png", "a.png"], "--png goes with --sequence"),
        (["--dh", "2"], "add --backward"),
    ],
)
def test_flags_that_do_not_go_together_are_one_line_exit_2(args, says):
    r = run(*args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    errors = [line for line in r.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and says in errors[0], r.output
