"""lstmkit.io.interop: round trips through torch's and Keras's layouts, and clear errors.

Shape legend: E input features, H hidden units. The numerical match with the real peers is in
tests/test_reference.py; here only NumPy is needed.
"""

import subprocess
import sys

import jax
import numpy as np
import pytest

from lstmkit import LstmkitError
from lstmkit.io.interop import (
    from_keras_bidirectional,
    from_keras_lstm,
    from_torch_state_dict,
    to_keras_bidirectional,
    to_keras_lstm,
    to_torch_state_dict,
)

E, H = 3, 4


def random_params(rng, E_, H_):
    return {
        "W_x": rng.normal(size=(E_, 4 * H_)).astype(np.float32),
        "W_h": rng.normal(size=(H_, 4 * H_)).astype(np.float32),
        "b": rng.normal(size=4 * H_).astype(np.float32),
    }


def random_layers(seed, num_layers, bidirectional):
    rng = np.random.default_rng(seed)
    layers, E_ = [], E
    for _ in range(num_layers):
        if bidirectional:
            layers.append({"forward": random_params(rng, E_, H), "backward": random_params(rng, E_, H)})
        else:
            layers.append(random_params(rng, E_, H))
        E_ = (2 if bidirectional else 1) * H
    return layers


def torch_state_dict(seed, num_layers, bidirectional):
    """A state_dict laid out as torch.nn.LSTM(E, H, num_layers, bidirectional) has it."""
    rng = np.random.default_rng(seed)
    sd = {}
    for k in range(num_layers):
        E_ = E if k == 0 else (2 if bidirectional else 1) * H
        for suffix in ("", "_reverse") if bidirectional else ("",):
            sd[f"weight_ih_l{k}{suffix}"] = rng.normal(size=(4 * H, E_)).astype(np.float32)
            sd[f"weight_hh_l{k}{suffix}"] = rng.normal(size=(4 * H, H)).astype(np.float32)
            sd[f"bias_ih_l{k}{suffix}"] = rng.normal(size=4 * H).astype(np.float32)
            sd[f"bias_hh_l{k}{suffix}"] = rng.normal(size=4 * H).astype(np.float32)
    return sd


def assert_layers_equal(a, b):
    assert len(a) == len(b)
    for la, lb in zip(a, b):
        assert set(la) == set(lb)
        pairs = [(la[d], lb[d]) for d in ("forward", "backward")] if "forward" in la else [(la, lb)]
        for pa, pb in pairs:
            for k in ("W_x", "W_h", "b"):
                np.testing.assert_array_equal(pa[k], pb[k])


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_torch_round_trip_from_lstmkit(num_layers, bidirectional):
    layers = random_layers(num_layers, num_layers, bidirectional)
    sd = to_torch_state_dict(layers)
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    back = from_torch_state_dict(sd, num_layers=num_layers, bidirectional=bidirectional)
    assert_layers_equal(back, layers)
    # Inferred from the keys when not given.
    assert_layers_equal(from_torch_state_dict(sd), layers)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_torch_round_trip_from_torch(num_layers, bidirectional):
    sd = torch_state_dict(5, num_layers, bidirectional)
    layers = from_torch_state_dict(sd)
    first = layers[0]["backward"] if bidirectional else layers[0]
    suffix = "_reverse" if bidirectional else ""
    np.testing.assert_array_equal(first["W_x"], sd[f"weight_ih_l0{suffix}"].T)
    np.testing.assert_array_equal(first["W_h"], sd[f"weight_hh_l0{suffix}"].T)
    np.testing.assert_array_equal(first["b"], sd[f"bias_ih_l0{suffix}"] + sd[f"bias_hh_l0{suffix}"])
    sd_back = to_torch_state_dict(layers)
    assert list(sd_back) == list(sd)  # torch's key order: layer, then direction, then ih, hh, biases
    for key in sd:
        if key.startswith("weight"):
            np.testing.assert_array_equal(sd_back[key], sd[key])
        assert sd_back[key].shape == sd[key].shape and sd_back[key].dtype == np.float32
    for key in (k for k in sd if k.startswith("bias_ih")):
        # The bias is split as b_ih = b, b_hh = 0: the sum torch uses is unchanged.
        hh = key.replace("bias_ih", "bias_hh")
        np.testing.assert_allclose(sd_back[key] + sd_back[hh], sd[key] + sd[hh], rtol=1e-6)
        np.testing.assert_array_equal(sd_back[hh], 0.0)


def test_torch_key_order_bidirectional():
    sd = to_torch_state_dict(random_layers(0, 2, True))
    want = [
        f"{w}_l{k}{s}"
        for k in (0, 1)
        for s in ("", "_reverse")
        for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    ]
    assert list(sd) == want


def test_torch_without_bias():
    sd = {k: v for k, v in torch_state_dict(1, 1, False).items() if k.startswith("weight")}
    [layer] = from_torch_state_dict(sd)
    np.testing.assert_array_equal(layer["b"], 0.0)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_torch_round_trip_gives_back_the_keys_it_got(num_layers, bidirectional):
    """bias=False has no bias keys, and a strict load_state_dict refuses extra ones: none come back."""
    full = torch_state_dict(7, num_layers, bidirectional)
    no_bias = {k: v for k, v in full.items() if k.startswith("weight")}
    for sd, bias in ((full, True), (no_bias, False)):
        layers = from_torch_state_dict(sd)
        assert layers.bias is bias and isinstance(layers, list)
        assert list(to_torch_state_dict(layers)) == list(sd)
        # The flag survives JAX transformations of the layers (it is part of the pytree).
        doubled = jax.jit(lambda ls: jax.tree.map(lambda a: 2 * a, ls))(layers)
        assert list(to_torch_state_dict(doubled)) == list(sd)
    # A plain list means bias=True, as before; bias= on export overrides either way.
    assert list(to_torch_state_dict(list(from_torch_state_dict(no_bias)))) == list(full)
    assert list(to_torch_state_dict(random_layers(0, num_layers, bidirectional), bias=True)) == list(full)


def test_torch_bias_false_export_refuses_a_nonzero_bias():
    layers = random_layers(0, 2, False)
    with pytest.raises(LstmkitError, match=r"layer 0 has a nonzero bias b.*bias=True"):
        to_torch_state_dict(layers, bias=False)
    zero = [dict(p, b=np.zeros_like(p["b"])) for p in layers]
    assert not any(k.startswith("bias") for k in to_torch_state_dict(zero, bias=False))
    sd = torch_state_dict(1, 2, False)
    del sd["bias_ih_l1"], sd["bias_hh_l1"]
    with pytest.raises(LstmkitError, match="all or none"):
        from_torch_state_dict(sd)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_torch_bias_false_round_trip_loads_strictly_into_torch(bidirectional):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(E, H, num_layers=2, bias=False, bidirectional=bidirectional, batch_first=True)
    layers = from_torch_state_dict(lstm.state_dict())
    sd = to_torch_state_dict(layers)
    assert list(sd) == list(lstm.state_dict())
    again = torch.nn.LSTM(E, H, num_layers=2, bias=False, bidirectional=bidirectional, batch_first=True)
    again.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    x = torch.randn(2, 5, E)
    with torch.no_grad():
        np.testing.assert_array_equal(again(x)[0].numpy(), lstm(x)[0].numpy())


def test_torch_tensors_are_duck_typed():
    # Anything with .detach().cpu().numpy(), like a torch tensor with requires_grad, is accepted.
    class FakeTensor:
        def __init__(self, a):
            self.a = a

        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return self.a

    sd = torch_state_dict(2, 1, False)
    layers = from_torch_state_dict({k: FakeTensor(v) for k, v in sd.items()})
    assert_layers_equal(layers, from_torch_state_dict(sd))


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda sd: sd.pop("weight_hh_l0"), "missing weight_ih_l0 or weight_hh_l0"),
        (lambda sd: sd.pop("bias_hh_l1"), "come as a pair"),
        (lambda sd: sd.update({"lstm.weight_ih_l0": sd["weight_ih_l0"]}), "strip the parent module's prefix"),
        (lambda sd: sd.update({"weight_hr_l0": np.zeros((2, H))}), "proj_size"),
        (lambda sd: sd.update({"weight_hh_l0": np.zeros((4 * H, H + 1))}), r"weight_hh_l0 must be \(4H, H\)"),
        (lambda sd: sd.update({"weight_ih_l0": np.zeros((4 * H + 1, E))}), r"weight_ih_l0 must be \(4H, E\)"),
        (lambda sd: sd.update({"bias_ih_l0": np.zeros(4 * H + 1)}), r"bias_ih_l0 must be \(4H,\)"),
        (lambda sd: sd.update({"weight_ih_l1": np.zeros((4 * H, H + 2))}), "layer below gives"),
        (lambda sd: [sd.pop(k) for k in list(sd) if k.endswith("_l0")], "numbered 0..L-1"),
    ],
)
def test_torch_errors(mutate, match):
    sd = torch_state_dict(3, 2, False)
    mutate(sd)
    with pytest.raises(LstmkitError, match=match):
        from_torch_state_dict(sd)


def test_torch_expected_structure_mismatch():
    sd = torch_state_dict(3, 2, True)
    with pytest.raises(LstmkitError, match="num_layers=3"):
        from_torch_state_dict(sd, num_layers=3)
    with pytest.raises(LstmkitError, match="bidirectional=False"):
        from_torch_state_dict(sd, bidirectional=False)
    with pytest.raises(LstmkitError, match="no torch.nn.LSTM weights"):
        from_torch_state_dict({})
    with pytest.raises(LstmkitError, match="state_dict"):
        from_torch_state_dict([1, 2])


def test_to_torch_errors():
    layers = random_layers(0, 2, False)
    with pytest.raises(LstmkitError, match="list of layers"):
        to_torch_state_dict(layers[0])
    with pytest.raises(LstmkitError, match="bidirectional"):
        to_torch_state_dict([random_layers(0, 1, True)[0], layers[1]])
    with pytest.raises(LstmkitError, match="W_x, W_h, b"):
        to_torch_state_dict([{"W_x": layers[0]["W_x"]}])
    bad = dict(layers[1], W_x=np.zeros((H + 1, 4 * H)))
    with pytest.raises(LstmkitError, match="layer below gives"):
        to_torch_state_dict([layers[0], bad])


def test_keras_round_trip():
    rng = np.random.default_rng(0)
    p = random_params(rng, E, H)
    weights = to_keras_lstm(p)
    assert [w.shape for w in weights] == [(E, 4 * H), (H, 4 * H), (4 * H,)]
    assert_layers_equal([from_keras_lstm(weights)], [p])
    assert_layers_equal([from_keras_lstm(tuple(weights))], [p])
    bi = {"forward": random_params(rng, E, H), "backward": random_params(rng, E, H)}
    six = to_keras_bidirectional(bi)
    assert len(six) == 6
    np.testing.assert_array_equal(six[3], bi["backward"]["W_x"])  # forward's three, then backward's
    assert_layers_equal([from_keras_bidirectional(six)], [bi])
    # Returned arrays are copies: editing them leaves the params alone.
    weights[0][0, 0] += 1.0
    assert weights[0][0, 0] != p["W_x"][0, 0]


def test_keras_without_bias():
    rng = np.random.default_rng(1)
    p = random_params(rng, E, H)
    np.testing.assert_array_equal(from_keras_lstm([p["W_x"], p["W_h"]])["b"], 0.0)
    bi = from_keras_bidirectional([p["W_x"], p["W_h"], p["W_x"], p["W_h"]])
    np.testing.assert_array_equal(bi["backward"]["b"], 0.0)


def test_keras_errors():
    rng = np.random.default_rng(2)
    p = random_params(rng, E, H)
    with pytest.raises(LstmkitError, match="kernel, recurrent_kernel, bias"):
        from_keras_lstm([p["W_x"]])
    with pytest.raises(LstmkitError, match="kernel, recurrent_kernel, bias"):
        from_keras_lstm(p)
    with pytest.raises(LstmkitError, match=r"W_h must be \(H, 4H\)"):
        from_keras_lstm([p["W_x"], p["W_h"].T, p["b"]])
    with pytest.raises(LstmkitError, match=r"W_x must be \(E, 4H\)"):
        from_keras_lstm([p["W_x"].T, p["W_h"], p["b"]])
    with pytest.raises(LstmkitError, match=r"b must be \(4H,\)"):
        from_keras_lstm([p["W_x"], p["W_h"], p["b"][:-1]])
    with pytest.raises(LstmkitError, match="6 arrays"):
        from_keras_bidirectional(to_keras_lstm(p))
    q = random_params(rng, E + 1, H)
    with pytest.raises(LstmkitError, match="differ in shape"):
        from_keras_bidirectional(to_keras_lstm(p) + to_keras_lstm(q))
    with pytest.raises(LstmkitError, match="forward, backward"):
        to_keras_bidirectional(p)


def test_importing_lstmkit_never_imports_torch_or_tensorflow():
    code = "import sys, lstmkit, lstmkit.io.interop; bad = {'torch', 'tensorflow', 'keras'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)
