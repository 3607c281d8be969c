"""Adversarial and virtual adversarial training on the embedded words (Miyato et al. 2017).

Shape legend: B batch, T time, E embedding, K classes (1 logit for a binary model).

Both move each text's word vectors e (B, T, E) by a small r and train the model to answer the
same; they differ in what r is and what "the same" means:

    adversarial:          r_adv  = eps * rms(e) * g / ||g||     g  = dLoss(e + r)/dr at r = 0
                          loss_adv = Loss(e + r_adv, y)          needs the label y
    virtual adversarial:  r_vadv = eps * rms(e) * g' / ||g'||    g' = dKL(p(e) || p(e + r))/dr at r = xi d
                          loss_vat = KL(p(e) || p(e + r_vadv))   needs no label

d is a random direction and xi a small step: one power iteration towards the direction in which
the prediction changes fastest. Norms are per example over (T, E); rms(e) is the root mean square
length of the example's real token vectors, so eps is in units of one word's vector whatever the
scale of the embeddings (Miyato et al. normalise the embeddings instead).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstmkit.errors import LstmkitError
from lstmkit.nn import layers as L

XI = 0.1  # the power iteration's step, in token lengths: small against eps, large for float32


def embedding_index(arch):
    """The index of the Embedding layer, whose output both methods perturb."""
    for index, layer in enumerate(arch.layers):
        if isinstance(layer, L.Embedding):
            return index
    raise LstmkitError("adversarial training perturbs the Embedding's output, and this model has no Embedding layer")


def embedded_inputs(arch, params, ids):
    """The Embedding's output (B, T, E) and the real-token mask (B, T), which size the perturbations."""
    index = embedding_index(arch)
    embedded, mask = arch.layers[index].apply(params[index], ids, None)
    return embedded, (jnp.ones(ids.shape, bool) if mask is None else mask)


def scaled_direction(g, embedded, mask, epsilon):
    """g rescaled per example to epsilon root-mean-square token lengths: (B, T, E) -> (B, T, E).

        r = epsilon * rms_t ||e_t|| * g / ||g||_2

    ||g||_2 runs over the whole sequence (T, E), rms over the example's real tokens. A row whose g
    is zero (padding) stays zero.
    """
    real = mask[..., None].astype(embedded.dtype)
    n_real = jnp.maximum(real.sum(axis=(1, 2), keepdims=True), 1.0)
    token_rms = jnp.sqrt(jnp.sum((embedded * real) ** 2, axis=(1, 2), keepdims=True) / n_real)
    g_norm = jnp.sqrt(jnp.sum(g * g, axis=(1, 2), keepdims=True))
    return epsilon * token_rms * g / jnp.maximum(g_norm, 1e-12)


# The name the rest of lstmkit and its tests know it by: the adversarial perturbation is g scaled.
adversarial_perturbation = scaled_direction


def kl_divergence(z_ref, z):
    """Per-example KL(p_ref || p) from logits (B, K): sigmoid for one logit, softmax for K > 1."""
    if z.shape[-1] == 1:
        p_ref = jax.nn.sigmoid(z_ref[:, 0])
        log_p, log_q = jax.nn.log_sigmoid(z_ref[:, 0]), jax.nn.log_sigmoid(z[:, 0])
        log_p1, log_q1 = jax.nn.log_sigmoid(-z_ref[:, 0]), jax.nn.log_sigmoid(-z[:, 0])
        return p_ref * (log_p - log_q) + (1.0 - p_ref) * (log_p1 - log_q1)
    log_p, log_q = jax.nn.log_softmax(z_ref, -1), jax.nn.log_softmax(z, -1)
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)


def virtual_adversarial_direction(arch, params, ids, key, epsilon):
    """The clean logits (B, K) and the perturbation r_vadv (B, T, E) of virtual adversarial training.

    One power iteration from a random direction d: r_vadv is the gradient of KL(p(e) || p(e + r))
    at r = xi d, rescaled to epsilon token lengths. Both are constants of the training step (the
    step differentiates `virtual_adversarial_kl`, never this), as in Miyato et al. key drives
    dropout (the same for every pass, so all see one network) and the random start d.
    """
    embedded, mask = embedded_inputs(arch, params, ids)
    z_clean = arch.apply(params, ids, key=key, logits=True, perturb=jnp.zeros_like(embedded))
    d = jax.random.normal(jax.random.fold_in(key, 0x7A7), embedded.shape, embedded.dtype) * mask[..., None]

    def kl_at(r):
        return kl_divergence(z_clean, arch.apply(params, ids, key=key, logits=True, perturb=r)).sum()

    g = jax.grad(kl_at)(scaled_direction(d, embedded, mask, XI))
    return jax.lax.stop_gradient(z_clean), jax.lax.stop_gradient(scaled_direction(g, embedded, mask, epsilon))


def virtual_adversarial_kl(arch, params, ids, weight, key, z_clean, r_vadv):
    """The weighted mean of KL(p_clean || p(e + r_vadv)): the loss that pulls the perturbed prediction
    towards the clean one; differentiable in params (z_clean and r_vadv are constants)."""
    kl = kl_divergence(z_clean, arch.apply(params, ids, key=key, logits=True, perturb=r_vadv))
    return (kl * weight).sum() / jnp.maximum(weight.sum(), 1.0)


def virtual_adversarial_loss(arch, params, ids, weight, key, epsilon):
    """The virtual adversarial loss of a batch at these params (its value; training differentiates
    `virtual_adversarial_kl` with the direction held fixed)."""
    z_clean, r_vadv = virtual_adversarial_direction(arch, params, ids, key, epsilon)
    return virtual_adversarial_kl(arch, params, ids, weight, key, z_clean, r_vadv)
