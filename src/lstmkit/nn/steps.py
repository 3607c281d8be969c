"""The jitted steps of the loops: one optimizer step (with its adversarial terms), one evaluation
step, one prediction step, and the last two for an ensemble (the mean of its members).

Each takes the model's `Architecture` as its static argument, never the model: jit keys on that
value, so every model of one architecture compiles each step once per batch shape, and the cache
holds the architecture, not the model (its weights are arguments). The train step donates the
parameters and the optimizer state, so they update in place.

Shape legend: B batch, T time, E embedding, K classes (1 logit for a binary model).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from lstmkit.nn.adversarial import (
    adversarial_perturbation,
    embedded_inputs,
    virtual_adversarial_direction,
    virtual_adversarial_kl,
)
from lstmkit.nn.optim import apply_gradients

PROBABILITY_EPS = 1e-7  # an ensemble's mean probability is clipped to [eps, 1 - eps] before its log


@partial(jax.jit, static_argnums=(0, 7, 8), donate_argnums=(1, 2))
def train_step(
    arch, params, opt_state, ids, labels, weight, key, adversarial=0.0, virtual_adversarial=0.0, strength=1.0
):
    """One optimizer step; returns new params and state, and the batch's loss and correct sums.

    adversarial > 0 adds adversarial training (Goodfellow et al. 2015; Miyato et al. 2017 for text):
    the batch is fitted a second time with its embedded inputs moved by `adversarial` token
    lengths (`adversarial_perturbation`) in the direction that raises the loss most, to first
    order. virtual_adversarial > 0 adds the virtual adversarial loss (`virtual_adversarial_loss`):
    the prediction on the batch moved by that many token lengths where it changes fastest is
    pulled towards the clean one, no label needed. The loss and gradient are the sums; the
    reported loss is the clean one. Each costs one to two more forward and backward passes.
    strength (traced, in [0, 1]) scales both sizes (`PerturbationStrength`: 0 until learning starts).
    """
    loss, correct, grads = batch_gradients(
        arch, params, ids, labels, weight, key, adversarial, virtual_adversarial, strength
    )
    params, opt_state = apply_gradients(arch.make_optimizer(), grads, opt_state, params, max_rows=ids.size)
    return params, opt_state, loss * weight.sum(), correct


def batch_gradients(arch, params, ids, labels, weight, key, adversarial, virtual_adversarial, strength):
    """(mean loss, correct count, gradient of the training objective) of one batch, as `train_step`
    computes them before its update; each term is a weighted mean over the rows, divided by
    max(weight.sum(), 1), so sum / max(weight.sum(), 1) x gradient is the gradient of the sum."""
    if adversarial:
        loss, correct, grads = _adversarial_gradients(arch, params, ids, labels, weight, key, adversarial * strength)
    else:
        (loss, correct), grads = jax.value_and_grad(arch.loss_fn, has_aux=True)(params, ids, labels, weight, key)
    if virtual_adversarial:
        vat_key = jax.random.key(0) if key is None else key
        z_clean, r_vadv = virtual_adversarial_direction(arch, params, ids, vat_key, virtual_adversarial * strength)
        vat_grads = jax.grad(virtual_adversarial_kl, argnums=1)(arch, params, ids, weight, vat_key, z_clean, r_vadv)
        grads = jax.tree.map(jnp.add, grads, vat_grads)
    return loss, correct, grads


def _adversarial_gradients(arch, params, ids, labels, weight, key, epsilon):
    """(clean loss, correct count, the clean gradient plus the gradient at the adversarial inputs)."""
    embedded, mask = embedded_inputs(arch, params, ids)  # sizes the perturbation
    grad_fn = jax.value_and_grad(arch.loss_fn, argnums=(0, 5), has_aux=True)
    (loss, correct), (grads, d_embedded) = grad_fn(params, ids, labels, weight, key, jnp.zeros_like(embedded))
    r_adv = jax.lax.stop_gradient(adversarial_perturbation(d_embedded, embedded, mask, epsilon))
    # The same dropout key: the direction was computed for this very network.
    adv_grads = jax.grad(lambda p: arch.loss_fn(p, ids, labels, weight, key, r_adv)[0])(params)
    return loss, correct, jax.tree.map(jnp.add, grads, adv_grads)


@partial(jax.jit, static_argnums=(0,))
def eval_step(arch, params, ids, labels, weight):
    """The batch's summed loss and correct count (B,) -> two scalars."""
    loss, correct = arch.loss_fn(params, ids, labels, weight)
    return loss * weight.sum(), correct


@partial(jax.jit, static_argnums=(0,))
def predict_step(arch, params, ids):
    """Probabilities (B, K) for ids (B, T)."""
    return arch.apply(params, ids)


@partial(jax.jit, static_argnums=(0,))
def ensemble_predict_step(arch, members, ids):
    """An ensemble's probabilities (B, K): the mean of its members' (a tuple of parameter sets)."""
    return jnp.mean(jnp.stack([arch.apply(params, ids) for params in members]), axis=0)


@partial(jax.jit, static_argnums=(0,))
def ensemble_eval_step(arch, members, ids, labels, weight):
    """`eval_step` of an ensemble: its loss is the one of its mean probabilities, as logits."""
    proba = jnp.clip(ensemble_predict_step(arch, members, ids), PROBABILITY_EPS, 1.0 - PROBABILITY_EPS)
    # the logits whose sigmoid (one per output) or softmax gives back the mean probabilities
    z = jnp.log(proba) - jnp.log1p(-proba) if arch.n_outputs == 1 or arch.multi_label else jnp.log(proba)
    loss, correct = arch.loss_of_logits(z, labels, weight)
    return loss * weight.sum(), correct
