"""`lstmkit cell`: the seed's neuron walk-through, as text and as JSON."""

import json
import math

import pytest
from click.testing import CliRunner

from lstmkit.cli import CELL_DEFAULTS, main


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def expected(v):
    """The cell by hand, from flag values (the seed's names: Wxc, Whc, bc for the candidate)."""
    f = sigmoid(v["wxf"] * v["x"] + v["whf"] * v["h_prev"] + v["bf"])
    i = sigmoid(v["wxi"] * v["x"] + v["whi"] * v["h_prev"] + v["bi"])
    g = math.tanh(v["wxc"] * v["x"] + v["whc"] * v["h_prev"] + v["bc"])
    o = sigmoid(v["wxo"] * v["x"] + v["who"] * v["h_prev"] + v["bo"])
    c = f * v["c_prev"] + i * g
    return {"f": f, "i": i, "g": g, "o": o, "c": c, "h": o * math.tanh(c)}


def run(*args):
    return CliRunner().invoke(main, ["cell", *args])


def test_text_walkthrough():
    r = run()
    assert r.exit_code == 0, r.output
    for line in ("f = sigmoid(", "i = sigmoid(", "g = tanh(", "o = sigmoid(", "c = f*c_prev + i*g", "h = o*tanh(c)"):
        assert line in r.output
    assert "= 1.3\n" in r.output  # c = 1 * 0.3 + 1 * 1, not the seed's 2.0
    assert "forget gate" in r.output and "output gate" in r.output


def test_json_defaults():
    r = run("--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert {"f", "i", "g", "o", "c", "h"} <= set(out) and out["schema_version"] == 1
    want = expected(CELL_DEFAULTS)
    for k in want:
        assert isinstance(out[k], float)
        assert out[k] == pytest.approx(want[k], rel=1e-6, abs=1e-7)
    assert out["c"] == pytest.approx(1.3, rel=1e-6)


def test_flags_change_the_result_as_the_formula_says():
    flags = {
        "x": 0.5,
        "h_prev": -0.4,
        "c_prev": 2.0,
        "wxf": -1.0,
        "bf": 0.3,
        "wxi": 0.2,
        "whi": 1.5,
        "wxc": -0.7,
        "bc": 0.1,
        "wxo": 2.0,
        "bo": -0.5,
    }
    args = [a for k, v in flags.items() for a in ("--" + k.replace("_", "-"), str(v))]
    r = run("--json", *args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    want = expected({**CELL_DEFAULTS, **flags})
    for k in want:
        assert out[k] == pytest.approx(want[k], rel=1e-5, abs=1e-6)
    # Nothing saturates now, so the result differs from the defaults.
    assert out["c"] != pytest.approx(1.3, rel=1e-3)


@pytest.mark.parametrize("args", [["--x", "abc"], ["--wxf", ""], ["--bogus", "1"]])
def test_bad_value_is_one_line_exit_2(args):
    r = run(*args)
    assert r.exit_code == 2
    assert "Traceback" not in r.output
    error_lines = [line for line in r.output.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1
