"""The opt-in two-device path (LSTMKIT_CPU_DEVICES=2) computes exactly what one device does."""

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json, numpy as np, jax, jax.numpy as jnp
import lstmkit
from lstmkit import bptt
from lstmkit.layers import LSTM, Bidirectional, Dense, Embedding
from lstmkit.model import Sequential

model = Sequential([Embedding(30, 8, mask_zero=True), Bidirectional(LSTM(6, return_sequences=True)),
                    Bidirectional(LSTM(5)), Dense(1, "sigmoid")])
params = model.build(seed=0)
ids = np.random.default_rng(0).integers(1, 30, (4, 9)).astype(np.int32)
ids[1, 5:] = 0
ids[3, :] = 0
loss = lambda p: model.loss_fn(p, jnp.asarray(ids), jnp.array([0, 1, 1, 0]), jnp.ones(4))[0]
value, grads = jax.jit(jax.value_and_grad(loss))(params)
print(json.dumps({"devices": len(jax.devices()), "mesh": bptt.direction_mesh(2) is not None,
                  "value": float(value), "grads": [np.asarray(g).ravel().tolist() for g in jax.tree.leaves(grads)]}))
"""


def run(devices):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["LSTMKIT_CPU_DEVICES"] = devices
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_devices_equal_one():
    one, two = run("1"), run("2")
    assert (one["devices"], one["mesh"]) == (1, False)
    assert (two["devices"], two["mesh"]) == (2, True)
    assert abs(one["value"] - two["value"]) < 1e-6
    for a, b in zip(one["grads"], two["grads"]):
        assert max(abs(x - y) for x, y in zip(a, b)) < 1e-5
