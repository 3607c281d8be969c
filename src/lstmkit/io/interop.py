"""LSTM weights from and to PyTorch and Keras, as NumPy arrays: no torch or TensorFlow needed.

Shape legend: E input features, H hidden units, D directions, L layers.

lstmkit's layer parameters are {"W_x": (E, 4H), "W_h": (H, 4H), "b": (4H,)}, gates side by side
in the order i, f, g, o; a bidirectional layer is {"forward": ..., "backward": ...}. Both peers
use the same gate order (checked against them by tests/test_reference.py), so only the layout
changes:

    torch.nn.LSTM state_dict, layer k (suffix "_reverse" for the backward direction):
        weight_ih_l{k} (4H, E_k)   ->  W_x = weight_ih.T      E_0 = E, E_k = D*H for k > 0
        weight_hh_l{k} (4H, H)     ->  W_h = weight_hh.T
        bias_ih_l{k}, bias_hh_l{k} (4H,)  ->  b = bias_ih + bias_hh   (both are added every step)
        no bias keys (bias=False)         ->  b = 0, and `TorchLayers.bias` is False, so that
                                              `to_torch_state_dict` writes no bias keys back

    keras.layers.LSTM.get_weights():  [kernel (E, 4H), recurrent_kernel (H, 4H), bias (4H,)]
        -> W_x, W_h, b unchanged.  Bidirectional(LSTM): the forward layer's three, then the backward's.

Arrays may be NumPy arrays or anything `np.asarray` takes; a torch tensor is detached and moved to
the CPU through its own methods, so this module never imports torch.

>>> import numpy as np
>>> sd = {"weight_ih_l0": np.zeros((8, 3)), "weight_hh_l0": np.zeros((8, 2)),
...       "bias_ih_l0": np.ones(8), "bias_hh_l0": np.ones(8)}
>>> [layer] = from_torch_state_dict(sd)
>>> layer["W_x"].shape, layer["W_h"].shape, layer["b"][:2].tolist()
((3, 8), (2, 8), [2.0, 2.0])
"""

from __future__ import annotations

import re

import jax
import numpy as np

from lstmkit.core.lstm import check_params
from lstmkit.errors import LstmkitError

_TORCH_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


class TorchLayers(list):
    """The layer params of a torch.nn.LSTM: a list, one entry per layer, that also remembers `bias`.

    torch.nn.LSTM(bias=False) has no bias keys, and its state_dict loads (strictly) only without
    them, so `from_torch_state_dict` records whether they were there and `to_torch_state_dict`
    writes the same keys back. It is a JAX pytree (its children are the layers, `bias` rides
    along), so jit, grad and tree.map keep the flag; a plain list of layers means bias=True.
    """

    def __init__(self, layers=(), *, bias=True):
        super().__init__(layers)
        self.bias = bool(bias)

    def __repr__(self):
        return f"TorchLayers({list.__repr__(self)}, bias={self.bias})"


jax.tree_util.register_pytree_node(
    TorchLayers, lambda t: (list(t), t.bias), lambda bias, layers: TorchLayers(layers, bias=bias)
)


def as_numpy(value, what):
    """A NumPy array from an array-like; torch tensors go through .detach().cpu() first."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as e:
        raise LstmkitError(f"{what} is not an array ({type(value).__name__}): {e}") from None


def _check_params(params, what, input_size=None):
    """Check one direction's {"W_x", "W_h", "b"} after converting each to NumPy; returns (E, H)."""
    if isinstance(params, dict):
        params = {k: as_numpy(v, f"{what} {k}") for k, v in params.items()}
    return check_params(params, what, input_size)


def from_torch_state_dict(state_dict, *, num_layers=None, bidirectional=None):
    """Convert a `torch.nn.LSTM` state_dict into lstmkit layer params, one entry per layer.

    Args:
        state_dict: {"weight_ih_l0": (4H, E), "weight_hh_l0": (4H, H), "bias_ih_l0": (4H,),
            "bias_hh_l0": (4H,), ... "_reverse" keys for a bidirectional LSTM}; NumPy arrays or
            tensors. Without bias keys (bias=False) b is zero. The keys of the LSTM module itself:
            strip a parent module's prefix ("lstm.") first.
        num_layers, bidirectional: what the LSTM should be; None reads them from the keys.

    Returns:
        A `TorchLayers` list of L layer params: {"W_x": (E_k, 4H), "W_h": (H, 4H), "b": (4H,)},
        or {"forward": ..., "backward": ...} when bidirectional; NumPy arrays in the input's
        dtype; its `bias` says whether the state_dict had bias keys (all layers alike, as torch).
        Feed it to `lstm_stack(layers, x, mask, bidirectional=...)`.

    >>> import numpy as np
    >>> sd = {f"{w}_l0{s}": np.zeros((8, 3) if w == "weight_ih" else (8, 2) if w == "weight_hh" else 8)
    ...       for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") for s in ("", "_reverse")}
    >>> [layer] = from_torch_state_dict(sd)
    >>> sorted(layer), layer["backward"]["W_x"].shape
    (['backward', 'forward'], (3, 8))
    """
    found = _torch_tensors(state_dict)
    L, directions = _torch_shape(found, num_layers, bidirectional)
    layers = TorchLayers(bias=any(name.startswith("bias") for _, _, name in found))
    input_size = None
    for k in range(L):
        converted = [_torch_direction(found, k, reverse, input_size) for reverse in directions]
        if len({p["W_h"].shape[0] for p in converted}) != 1:
            raise LstmkitError(f"layer {k}: the two directions have different hidden sizes")
        input_size = len(directions) * converted[0]["W_h"].shape[0]  # the next layer reads [h_fwd, h_bwd]
        layers.append({"forward": converted[0], "backward": converted[1]} if len(directions) == 2 else converted[0])
    return layers


def _torch_tensors(state_dict):
    """{(layer, reverse, name): array} of a torch.nn.LSTM state_dict, its keys checked."""
    if not hasattr(state_dict, "items"):
        raise LstmkitError(f"expected a state_dict (a mapping of names to arrays), got {type(state_dict).__name__}")
    found = {}
    for key, value in state_dict.items():
        match = _TORCH_KEY.match(str(key))
        if match is None:
            hint = (
                "; strip the parent module's prefix first" if re.search(r"(weight|bias)_(ih|hh)_l\d+", str(key)) else ""
            )
            raise LstmkitError(f"unexpected key {key!r} in a torch.nn.LSTM state_dict{hint}")
        name, layer, reverse = match.group(1), int(match.group(2)), bool(match.group(3))
        if name == "weight_hr":
            raise LstmkitError(f"{key!r}: LSTMs with proj_size are not supported (lstmkit's h is the cell output)")
        found[(layer, reverse, name)] = as_numpy(value, key)
    if not found:
        raise LstmkitError("the state_dict has no torch.nn.LSTM weights (weight_ih_l0, weight_hh_l0, ...)")
    return found


def _torch_shape(found, num_layers, bidirectional):
    """(number of layers, the directions (False, or False and True for reverse)) the tensors hold,
    checked against what the caller expects; biases in every layer or in none."""
    layers_seen = sorted({layer for layer, _, _ in found})
    has_reverse = any(reverse for _, reverse, _ in found)
    L = len(layers_seen)
    if layers_seen != list(range(L)):
        raise LstmkitError(f"layers must be numbered 0..L-1, found layers {layers_seen}")
    if num_layers is not None and num_layers != L:
        raise LstmkitError(f"expected num_layers={num_layers}, but the state_dict holds {L} layer(s)")
    if bidirectional is not None and bidirectional != has_reverse:
        raise LstmkitError(
            f"expected bidirectional={bidirectional}, but the state_dict {'has' if has_reverse else 'has no'} _reverse weights"
        )
    directions = (False, True) if has_reverse else (False,)
    with_bias = {(layer, reverse) for layer, reverse, name in found if name.startswith("bias")}
    if with_bias and len(with_bias) != L * len(directions):
        raise LstmkitError("some layers have bias keys and some have none; a torch.nn.LSTM has them in all or none")
    return L, directions


def _torch_direction(found, k, reverse, input_size):
    """Layer k's params in one direction, {"W_x": (E, 4H), "W_h": (H, 4H), "b": (4H,)}, from torch's
    (4H, E) and (4H, H) weights and two biases; input_size: what the layer below gives, or None."""
    suffix = f"_l{k}{'_reverse' if reverse else ''}"
    w_ih, w_hh, b_ih, b_hh = (
        found.get((k, reverse, name)) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )
    if w_ih is None or w_hh is None:
        raise LstmkitError(f"missing weight_ih{suffix} or weight_hh{suffix} in the state_dict")
    if (b_ih is None) != (b_hh is None):
        raise LstmkitError(f"bias_ih{suffix} and bias_hh{suffix} come as a pair; only one is present")
    if w_hh.ndim != 2 or w_hh.shape[0] != 4 * w_hh.shape[1]:
        raise LstmkitError(f"weight_hh{suffix} must be (4H, H), got {w_hh.shape}")
    H = w_hh.shape[1]
    if w_ih.ndim != 2 or w_ih.shape[0] != 4 * H:
        raise LstmkitError(f"weight_ih{suffix} must be (4H, E) = ({4 * H}, E), got {w_ih.shape}")
    if b_ih is None:
        b = np.zeros(4 * H, w_ih.dtype)  # bias=False
    else:
        for name, bias in (("bias_ih", b_ih), ("bias_hh", b_hh)):
            if bias.shape != (4 * H,):
                raise LstmkitError(f"{name}{suffix} must be (4H,) = ({4 * H},), got {bias.shape}")
        b = b_ih + b_hh  # torch adds both biases at every step; one bias does the same
    params = {"W_x": np.ascontiguousarray(w_ih.T), "W_h": np.ascontiguousarray(w_hh.T), "b": b}
    _check_params(params, f"layer {k}{' reverse' if reverse else ''}", input_size)
    return params


def to_torch_state_dict(layers, *, bias=None):
    """Convert lstmkit layer params into a `torch.nn.LSTM` state_dict of NumPy arrays.

    Args:
        layers: a list of layer params (all unidirectional, or all {"forward", "backward"}).
        bias: write bias keys, for torch.nn.LSTM(bias=True), or none, for bias=False (every b
            must then be zero). None: `layers.bias` when layers came from `from_torch_state_dict`
            (the keys it read come back), else True.

    Returns:
        {"weight_ih_l0": (4H, E), "weight_hh_l0": (4H, H), "bias_ih_l0": (4H,), "bias_hh_l0": (4H,),
        ...}, in torch's key order. The one bias goes to bias_ih and bias_hh is zero: their sum,
        all torch uses, is b. Load it with
        `lstm.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})`.

    >>> import numpy as np
    >>> p = {"W_x": np.zeros((3, 8)), "W_h": np.zeros((2, 8)), "b": np.ones(8)}
    >>> {k: v.shape for k, v in to_torch_state_dict([p]).items()}
    {'weight_ih_l0': (8, 3), 'weight_hh_l0': (8, 2), 'bias_ih_l0': (8,), 'bias_hh_l0': (8,)}
    """
    bias = getattr(layers, "bias", True) if bias is None else bool(bias)
    if isinstance(layers, dict):
        raise LstmkitError("to_torch_state_dict takes a list of layers; wrap a single layer as [params]")
    if not layers:
        raise LstmkitError("to_torch_state_dict needs at least one layer")
    bidirectional = isinstance(layers[0], dict) and set(layers[0]) == {"forward", "backward"}
    state_dict = {}
    input_size = None
    for k, layer in enumerate(layers):
        is_bi = isinstance(layer, dict) and set(layer) == {"forward", "backward"}
        if is_bi != bidirectional:
            raise LstmkitError(
                f"layer {k} is {'' if is_bi else 'not '}bidirectional but layer 0 is {'' if bidirectional else 'not'}; torch needs all alike"
            )
        directions = [(layer["forward"], ""), (layer["backward"], "_reverse")] if is_bi else [(layer, "")]
        hidden = set()
        for params, suffix in directions:
            _, H = _check_params(params, f"layer {k}{suffix.replace('_', ' ')}", input_size)
            hidden.add(H)
            b = np.asarray(params["b"])
            state_dict[f"weight_ih_l{k}{suffix}"] = np.ascontiguousarray(np.asarray(params["W_x"]).T)
            state_dict[f"weight_hh_l{k}{suffix}"] = np.ascontiguousarray(np.asarray(params["W_h"]).T)
            if bias:
                state_dict[f"bias_ih_l{k}{suffix}"] = b.copy()
                state_dict[f"bias_hh_l{k}{suffix}"] = np.zeros_like(b)
            elif np.any(b != 0):
                raise LstmkitError(
                    f"layer {k}{suffix.replace('_', ' ')} has a nonzero bias b, which torch.nn.LSTM(bias=False) cannot hold; export with bias=True"
                )
        if len(hidden) != 1:
            raise LstmkitError(f"layer {k}: the two directions have different hidden sizes {sorted(hidden)}")
        input_size = len(directions) * hidden.pop()
    return state_dict


def from_keras_lstm(weights):
    """Convert a Keras `LSTM` layer's `get_weights()` into lstmkit params.

    Args:
        weights: [kernel (E, 4H), recurrent_kernel (H, 4H), bias (4H,)], or the first two alone
            for use_bias=False (then b is zero).

    Returns:
        {"W_x": kernel, "W_h": recurrent_kernel, "b": bias} as NumPy arrays (same layout, same gate order).

    >>> import numpy as np
    >>> p = from_keras_lstm([np.zeros((3, 8)), np.zeros((2, 8)), np.zeros(8)])
    >>> p["W_x"].shape, p["W_h"].shape
    ((3, 8), (2, 8))
    """
    if not isinstance(weights, (list, tuple)) or len(weights) not in (2, 3):
        got = len(weights) if isinstance(weights, (list, tuple)) else type(weights).__name__
        raise LstmkitError(
            f"a Keras LSTM's weights are [kernel, recurrent_kernel, bias] (3 arrays, or 2 without bias), got {got}"
        )
    kernel = as_numpy(weights[0], "kernel")
    recurrent = as_numpy(weights[1], "recurrent_kernel")
    bias = as_numpy(weights[2], "bias") if len(weights) == 3 else np.zeros(recurrent.shape[-1:], recurrent.dtype)
    params = {"W_x": kernel, "W_h": recurrent, "b": bias}
    _check_params(params, "Keras LSTM")
    return params


def from_keras_bidirectional(weights):
    """Convert a Keras `Bidirectional(LSTM)` layer's `get_weights()` into lstmkit params.

    Args:
        weights: the forward layer's [kernel, recurrent_kernel, bias] followed by the backward
            layer's: 6 arrays (4 with use_bias=False).

    Returns:
        {"forward": params, "backward": params}.
    """
    if not isinstance(weights, (list, tuple)) or len(weights) not in (4, 6):
        got = len(weights) if isinstance(weights, (list, tuple)) else type(weights).__name__
        raise LstmkitError(
            f"a Keras Bidirectional(LSTM)'s weights are 6 arrays (forward then backward kernel, recurrent_kernel, bias), got {got}"
        )
    half = len(weights) // 2
    forward, backward = from_keras_lstm(list(weights[:half])), from_keras_lstm(list(weights[half:]))
    if forward["W_x"].shape != backward["W_x"].shape:
        raise LstmkitError(
            f"forward and backward kernels differ in shape: {forward['W_x'].shape} vs {backward['W_x'].shape}"
        )
    return {"forward": forward, "backward": backward}


def to_keras_lstm(params):
    """Convert lstmkit params into a Keras `LSTM` layer's weights, for `layer.set_weights(...)`.

    Args:
        params: {"W_x": (E, 4H), "W_h": (H, 4H), "b": (4H,)}.

    Returns:
        [kernel (E, 4H), recurrent_kernel (H, 4H), bias (4H,)] as NumPy arrays.
    """
    _check_params(params, "LSTM params")
    return [np.array(params["W_x"]), np.array(params["W_h"]), np.array(params["b"])]


def to_keras_bidirectional(params):
    """Convert {"forward", "backward"} params into a Keras `Bidirectional(LSTM)`'s 6 weight arrays."""
    if not isinstance(params, dict) or set(params) != {"forward", "backward"}:
        raise LstmkitError("bidirectional params must be a dict with keys forward, backward")
    return to_keras_lstm(params["forward"]) + to_keras_lstm(params["backward"])
