"""Regenerate the reference fixtures in tests/fixtures/ from torch.nn.LSTM and Keras 3 LSTM.

Run with torch 2.13 and TensorFlow/Keras 3 installed (the `bench` extra), from the repository root:

    python tests/make_fixtures.py

Each fixture is a small float32 npz (B <= 4, T <= 9, E <= 5, H <= 6) holding the inputs, the mask,
the peer's own weights (its names and layout), its outputs, final states and the gradients of a
fixed loss w.r.t. the input, the initial states and every weight. tests/test_reference.py loads
them through lstmkit.io.interop and needs neither torch nor TensorFlow.

Loss, for every fixture: sum(outputs * w_out * mask) + sum(h_n * w_h) + sum(c_n * w_c), with the
random weights w_* stored beside. Only real steps enter it, because the peers disagree on padded
outputs (torch: zeros; Keras: the previous output repeated).
"""

import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def right_padded_mask(lengths, T):
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def save(name, **arrays):
    for k, v in arrays.items():
        v = np.asarray(v)
        if v.dtype == np.float64:
            raise TypeError(f"{name}: {k} is float64; fixtures are float32")
    path = FIXTURES / f"{name}.npz"
    np.savez_compressed(path, **arrays)
    print(f"wrote {path.relative_to(FIXTURES.parent.parent)} ({path.stat().st_size} bytes)")


def make_torch(name, *, B, T, E, H, num_layers, bidirectional, lengths, with_initial_state, seed):
    """A torch.nn.LSTM over packed sequences (enforce_sorted=False), outputs padded back with zeros."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    D = 2 if bidirectional else 1
    lstm = torch.nn.LSTM(E, H, num_layers=num_layers, bidirectional=bidirectional, batch_first=True)
    with torch.no_grad():  # larger than the default init so the gates leave their linear range
        for p in lstm.parameters():
            p.uniform_(-0.8, 0.8)
    x = torch.tensor(rng.normal(size=(B, T, E)).astype(np.float32), requires_grad=True)
    mask = right_padded_mask(lengths, T)
    h0 = torch.tensor(rng.normal(size=(num_layers * D, B, H)).astype(np.float32), requires_grad=True)
    c0 = torch.tensor(rng.normal(size=(num_layers * D, B, H)).astype(np.float32), requires_grad=True)
    w_out = rng.normal(size=(B, T, D * H)).astype(np.float32)
    w_h = rng.normal(size=(num_layers * D, B, H)).astype(np.float32)
    w_c = rng.normal(size=(num_layers * D, B, H)).astype(np.float32)

    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    out_packed, (h_n, c_n) = lstm(packed, (h0, c0)) if with_initial_state else lstm(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=True, total_length=T)
    m = torch.tensor(mask[:, :, None].astype(np.float32))
    loss = (out * torch.tensor(w_out) * m).sum() + (h_n * torch.tensor(w_h)).sum() + (c_n * torch.tensor(w_c)).sum()
    loss.backward()

    arrays = {
        "x": x.detach().numpy(), "mask": mask, "lengths": np.asarray(lengths),
        "num_layers": np.asarray(num_layers), "bidirectional": np.asarray(bidirectional),
        "with_initial_state": np.asarray(with_initial_state),
        "h0": h0.detach().numpy(), "c0": c0.detach().numpy(),
        "w_out": w_out, "w_h": w_h, "w_c": w_c,
        "out": out.detach().numpy(), "h_n": h_n.detach().numpy(), "c_n": c_n.detach().numpy(),
        "loss": np.float32(loss.item()), "grad_x": x.grad.numpy(),
    }  # fmt: skip
    if with_initial_state:
        arrays["grad_h0"], arrays["grad_c0"] = h0.grad.numpy(), c0.grad.numpy()
    for key, p in lstm.named_parameters():
        arrays[f"sd/{key}"] = p.detach().numpy()
        arrays[f"grad/{key}"] = p.grad.numpy()
    save(name, **arrays)


def make_keras(name, *, B, T, E, H, bidirectional, lengths, with_initial_state, seed):
    """A Keras 3 LSTM or Bidirectional(LSTM) with a right-padded mask, TF backend, GradientTape."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    D = 2 if bidirectional else 1
    mask = right_padded_mask(lengths, T)

    def build(return_sequences):
        cell = keras.layers.LSTM(H, return_sequences=return_sequences, return_state=True)
        layer = keras.layers.Bidirectional(cell, merge_mode="concat") if bidirectional else cell
        layer.build((B, T, E))
        return layer

    layer = build(return_sequences=True)
    # Random weights everywhere, the bias too (Keras initialises it to 0 and 1s).
    weights = [rng.uniform(-0.8, 0.8, size=w.shape).astype(np.float32) for w in layer.get_weights()]
    layer.set_weights(weights)
    if bidirectional:  # the weights list is the forward layer's three, then the backward's
        for got, want in zip(
            layer.get_weights(), layer.forward_layer.get_weights() + layer.backward_layer.get_weights()
        ):
            assert np.array_equal(got, want), "Bidirectional weight order is not forward then backward"
    final_layer = build(return_sequences=False)
    final_layer.set_weights(weights)

    x = tf.Variable(rng.normal(size=(B, T, E)).astype(np.float32))
    h0 = tf.Variable(rng.normal(size=(D, B, H)).astype(np.float32))
    c0 = tf.Variable(rng.normal(size=(D, B, H)).astype(np.float32))
    w_out = rng.normal(size=(B, T, D * H)).astype(np.float32)
    w_h = rng.normal(size=(D, B, H)).astype(np.float32)
    w_c = rng.normal(size=(D, B, H)).astype(np.float32)
    mask_t = tf.constant(mask)

    def call(lyr):
        initial = [h0[d] if k == 0 else c0[d] for d in range(D) for k in (0, 1)] if with_initial_state else None
        outputs = lyr(x, mask=mask_t, initial_state=initial)
        seq, states = outputs[0], outputs[1:]
        h_n = tf.stack(states[0::2])  # (D, B, H): forward, then backward
        c_n = tf.stack(states[1::2])
        return seq, h_n, c_n

    with tf.GradientTape() as tape:
        seq, h_n, c_n = call(layer)
        loss = tf.reduce_sum(seq * w_out * mask[:, :, None]) + tf.reduce_sum(h_n * w_h) + tf.reduce_sum(c_n * w_c)
    variables = [x, h0, c0] + list(layer.trainable_weights)
    grads = tape.gradient(loss, variables)
    final_out, _, _ = call(final_layer)

    arrays = {
        "x": x.numpy(), "mask": mask, "lengths": np.asarray(lengths),
        "bidirectional": np.asarray(bidirectional), "with_initial_state": np.asarray(with_initial_state),
        "h0": h0.numpy(), "c0": c0.numpy(), "w_out": w_out, "w_h": w_h, "w_c": w_c,
        "out": seq.numpy(), "final_out": final_out.numpy(), "h_n": h_n.numpy(), "c_n": c_n.numpy(),
        "loss": np.float32(loss.numpy()), "grad_x": grads[0].numpy(),
    }  # fmt: skip
    if with_initial_state:
        arrays["grad_h0"], arrays["grad_c0"] = grads[1].numpy(), grads[2].numpy()
    # Weights and their gradients in get_weights() order, which is trainable_weights order here.
    assert [w.path for w in layer.trainable_weights] == [w.path for w in layer.weights]
    for n, (w, g) in enumerate(zip(layer.get_weights(), grads[3:])):
        arrays[f"weights/{n}"] = w
        arrays[f"grad_weights/{n}"] = g.numpy()
    save(name, **arrays)


def main():
    import torch

    if not torch.__version__.startswith("2.13"):
        sys.exit(f"these fixtures are made with torch 2.13, found {torch.__version__}")
    FIXTURES.mkdir(exist_ok=True)
    make_torch(
        "torch_lstm",
        B=3,
        T=6,
        E=4,
        H=5,
        num_layers=1,
        bidirectional=False,
        lengths=[6, 2, 4],
        with_initial_state=False,
        seed=1,
    )
    make_torch(
        "torch_bilstm_2layers",
        B=4,
        T=9,
        E=5,
        H=6,
        num_layers=2,
        bidirectional=True,
        lengths=[9, 4, 1, 6],
        with_initial_state=True,
        seed=2,
    )
    make_keras(
        "keras_lstm", B=4, T=8, E=5, H=6, bidirectional=False, lengths=[8, 3, 5, 1], with_initial_state=True, seed=3
    )
    make_keras(
        "keras_bidirectional",
        B=4,
        T=9,
        E=5,
        H=6,
        bidirectional=True,
        lengths=[2, 9, 5, 7],
        with_initial_state=False,
        seed=4,
    )


if __name__ == "__main__":
    main()
