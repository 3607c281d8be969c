"""What a model computes, apart from its state: the layers, the loss and the optimizer, as one value.

`Architecture.apply` is the forward pass every path runs (training, evaluation, prediction,
explain's trace); `Architecture.loss_fn` the loss training differentiates. A `Sequential`
(`lstmkit.nn.model`) holds one, with the state (parameters, optimizer state, history) beside it.

Shape legend: B batch, T time, E embedding, K classes (1 logit for a binary model; K sigmoids
for a multi-label one, whose last layer is Dense(K, "sigmoid")).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import optax

from lstmkit.errors import LstmkitError
from lstmkit.nn import layers as L
from lstmkit.nn.optim import OptimizerSettings

LOSSES = ("binary_crossentropy", "sparse_categorical_crossentropy")


@dataclass(frozen=True)
class Architecture:
    """What a model computes: its layers, loss and optimizer; immutable, equal by value, hashable.

    The jitted steps (`lstmkit.nn.steps`, `lstmkit.explain.trace`) take it as their static
    argument, so every model of one architecture shares their compiled programs: a sweep or a
    self-training round does not compile again. Nothing the host does is part of it (the
    vectorizer, class names, lengths), nor any state (parameters, optimizer state, history).

    Attributes:
        layers: the numerical layers, a tuple; layers are equal by their configuration.
        loss: one of LOSSES, or None for the one the last layer implies (1 unit: binary, K: sparse
            categorical; K sigmoid units: binary per label, a multi-label model).
        optimizer: `OptimizerSettings` (equal by value), an optax transformation (equal only to
            itself: models share code when they are given the same object), or None before compile.
        class_weight: one weight per class that multiplies its examples' loss (K floats, a tuple),
            or None for all ones; the mean still divides by the number of examples, as Keras's.
    """

    layers: tuple = ()
    loss: str | None = None
    optimizer: Any = None
    class_weight: tuple | None = None

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        if self.class_weight is not None:
            object.__setattr__(self, "class_weight", tuple(float(w) for w in self.class_weight))

    @property
    def n_outputs(self):
        last = self.layers[-1] if self.layers else None
        if not isinstance(last, L.Dense):
            raise LstmkitError("a classifier's last layer must be Dense (1 unit with sigmoid, or K units with softmax)")
        return last.units

    @property
    def multi_label(self):
        """Whether the model gives a set of labels: K > 1 sigmoid outputs, one yes/no per class."""
        last = self.layers[-1] if self.layers else None
        return isinstance(last, L.Dense) and last.units > 1 and last.activation == "sigmoid"

    def implied_loss(self):
        """The loss the last Dense layer implies: binary for 1 unit or K sigmoids, sparse categorical for K."""
        return LOSSES[0] if self.n_outputs == 1 or self.multi_label else LOSSES[1]

    def check_loss(self):
        """Raise when the compiled loss, or the number of class weights, does not fit the last layer's width."""
        if self.loss is not None and self.loss != self.implied_loss():
            want = (
                "1 output (Dense(1, 'sigmoid')) or K sigmoid outputs (multi-label)"
                if self.loss == LOSSES[0]
                else "K > 1 outputs (Dense(K, 'softmax'))"
            )
            raise LstmkitError(
                f"loss {self.loss!r} needs {want}, but the last Dense layer has {self.n_outputs}; "
                f"compile with loss={self.implied_loss()!r}, or change the last layer"
            )
        if self.multi_label and self.class_weight is not None:
            raise LstmkitError(
                "class_weight weighs one class per text; a multi-label model weighs its labels alike: compile without class_weight"
            )
        n_classes = 2 if self.n_outputs == 1 else self.n_outputs
        if self.class_weight is not None and len(self.class_weight) != n_classes:
            raise LstmkitError(
                f"class_weight has {len(self.class_weight)} weights for {n_classes} classes; give one per class"
            )

    def make_optimizer(self):
        """The optax transformation: built from the settings, or the one compile was given."""
        return self.optimizer.make() if isinstance(self.optimizer, OptimizerSettings) else self.optimizer

    def init_params(self, key):
        """Fresh parameters for every layer from one key (split per layer); pure."""
        shape = (None,)  # token ids, any length
        params = []
        for layer, k in zip(self.layers, jax.random.split(key, max(len(self.layers), 1))):
            p, shape = layer.init(k, shape)
            params.append(p)
        return params

    def apply(self, params, ids, *, key=None, logits=False, perturb=None, trace=False):
        """Forward pass on ids (B, T); returns probabilities, or logits (B, K) with logits=True.

        key: a PRNG key in training (dropout on), None at inference.
        perturb: (B, T, E) added to the Embedding's output (adversarial training), or None.
        trace: also return each LSTM layer's gates and states from this very pass, one dict per
            LSTM or Bidirectional layer in order (see `LSTM.apply`): (output, traces).
        """
        layers = self.layers
        x, mask, traces = ids, None, []
        n = len(layers)
        keys = jax.random.split(key, n) if key is not None else [None] * n
        done = -1  # layers up to this index already ran, fused into an LSTM
        for idx, (layer, p, k) in enumerate(zip(layers, params, keys)):
            if idx <= done:
                continue
            if logits and idx == n - 1 and isinstance(layer, L.Dense):
                x = layer.logits(p, x)
                break
            nxt = idx + 1
            while key is None and nxt < n and isinstance(layers[nxt], L.Dropout):
                nxt += 1  # dropout is the identity at inference: look past it
            if isinstance(layer, L.Embedding) and perturb is not None:
                x, mask = layer.apply(p, x, mask, key=k)
                x = x + perturb
                continue
            if (
                isinstance(layer, L.Embedding)
                and nxt < n
                and isinstance(layers[nxt], (L.LSTM, L.Bidirectional))
                and not layer.bigram_buckets
                and layer.input_dim <= x.size
            ):
                # x W_x = (table W_x)[ids]: project the small table instead of every token.
                mask = (x != 0) if layer.mask_zero else None
                x, mask, *traced = layers[nxt].apply(params[nxt], x, mask, embedding=p["table"], trace=trace)
                traces += traced
                done = nxt
            elif isinstance(layer, (L.LSTM, L.Bidirectional)):
                x, mask, *traced = layer.apply(p, x, mask, key=k, trace=trace)
                traces += traced
            else:
                x, mask = layer.apply(p, x, mask, key=k)
        return (x, traces) if trace else x

    def loss_fn(self, params, ids, labels, weight, key=None, perturb=None):
        """Weighted mean of the compiled loss, from logits, and the number of correct predictions.

        labels: classes (B,) int; or soft targets (float): P(class 1) (B,) for a binary model,
        distributions (B, K) for K classes (self-training's soft pseudo-labels). Cross-entropy
        against a soft target p is -p log q - (1-p) log(1-q); a hard label is the case p in {0, 1}.
        A multi-label model's labels are (B, K) 0/1: its loss is that binary cross-entropy averaged
        over the K labels (Keras's binary_crossentropy), and a prediction is correct when every
        label is right (subset accuracy).
        """
        return self.loss_of_logits(self.apply(params, ids, key=key, logits=True, perturb=perturb), labels, weight)

    def loss_of_logits(self, z, labels, weight):
        """`loss_fn` from the logits z (B, K) on: (weighted mean loss, correct count)."""
        if self.multi_label:  # K logits, one sigmoid each
            targets = labels.astype(z.dtype)
            per_example = optax.sigmoid_binary_cross_entropy(z, targets).mean(axis=-1)
            correct = jnp.all((z >= 0) == (targets >= 0.5), axis=-1)
        elif (self.loss or self.implied_loss()) == "binary_crossentropy":  # one logit, sigmoid
            z = z[:, 0]
            per_example = optax.sigmoid_binary_cross_entropy(z, labels.astype(z.dtype))
            correct = (z >= 0) == (labels >= 0.5)
        elif labels.ndim == 2:  # soft targets over K classes
            per_example = optax.softmax_cross_entropy(z, labels.astype(z.dtype))
            correct = z.argmax(-1) == labels.argmax(-1)
        else:
            per_example = optax.softmax_cross_entropy_with_integer_labels(z, labels)
            correct = z.argmax(-1) == labels
        if self.class_weight is not None:
            per_example = per_example * _target_weight(jnp.asarray(self.class_weight, z.dtype), labels)
        total = jnp.maximum(weight.sum(), 1.0)
        return (per_example * weight).sum() / total, (correct * weight).sum()


def _target_weight(class_weight, labels):
    """Each example's class weight (B,): w[y] for a class; for a soft target p, its mean weight
    (w_0 (1 - p) + w_1 p for a binary P(class 1), p . w for a distribution)."""
    if labels.ndim == 2:
        return labels.astype(class_weight.dtype) @ class_weight
    if jnp.issubdtype(labels.dtype, jnp.floating):
        return class_weight[0] * (1.0 - labels) + class_weight[1] * labels
    return class_weight[labels]
