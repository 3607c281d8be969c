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
import numpy as np

from lstmkit.errors import LstmkitError
from lstmkit.nn import layers as L
from lstmkit.nn import row_random

XI = 0.1  # the power iteration's step, in token lengths: small against eps, large for float32


def embedding_index(arch):
    """The index of the Embedding layer, whose output both methods perturb."""
    for index, layer in enumerate(arch.layers):
        if isinstance(layer, L.Embedding):
            return index
    raise LstmkitError("adversarial training perturbs the Embedding's output, and this model has no Embedding layer")


def check_sizes(arch, adversarial, virtual_adversarial):
    """Refuse a negative (or NaN) perturbation size, and perturbations without an Embedding to perturb."""
    if adversarial < 0:
        raise LstmkitError(
            f"--adversarial must be 0 (off) or a positive perturbation size in token lengths, got {adversarial}"
        )
    if not virtual_adversarial >= 0:
        raise LstmkitError(
            "--virtual-adversarial must be 0 (off) or a positive perturbation size in token lengths, "
            f"got {virtual_adversarial}"
        )
    if adversarial or virtual_adversarial:
        embedding_index(arch)


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


def kl_divergence(z_ref, z, multi_label=False):
    """Per-example KL(p_ref || p) from logits (B, K): sigmoid for one logit, softmax for K > 1;
    multi_label: K independent sigmoids, their KLs averaged (as the loss averages over labels)."""
    if z.shape[-1] == 1 or multi_label:
        p_ref = jax.nn.sigmoid(z_ref)
        log_p, log_q = jax.nn.log_sigmoid(z_ref), jax.nn.log_sigmoid(z)
        log_p1, log_q1 = jax.nn.log_sigmoid(-z_ref), jax.nn.log_sigmoid(-z)
        return jnp.mean(p_ref * (log_p - log_q) + (1.0 - p_ref) * (log_p1 - log_q1), axis=-1)
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
    d = row_random.normal(jax.random.fold_in(key, 0x7A7), embedded.shape, embedded.dtype) * mask[..., None]

    def kl_at(r):
        return kl_divergence(z_clean, arch.apply(params, ids, key=key, logits=True, perturb=r), arch.multi_label).sum()

    g = jax.grad(kl_at)(scaled_direction(d, embedded, mask, XI))
    return jax.lax.stop_gradient(z_clean), jax.lax.stop_gradient(scaled_direction(g, embedded, mask, epsilon))


def virtual_adversarial_kl(arch, params, ids, weight, key, z_clean, r_vadv):
    """The weighted mean of KL(p_clean || p(e + r_vadv)): the loss that pulls the perturbed prediction
    towards the clean one; differentiable in params (z_clean and r_vadv are constants)."""
    kl = kl_divergence(z_clean, arch.apply(params, ids, key=key, logits=True, perturb=r_vadv), arch.multi_label)
    return (kl * weight).sum() / jnp.maximum(weight.sum(), 1.0)


def virtual_adversarial_loss(arch, params, ids, weight, key, epsilon):
    """The virtual adversarial loss of a batch at these params (its value; training differentiates
    `virtual_adversarial_kl` with the direction held fixed)."""
    z_clean, r_vadv = virtual_adversarial_direction(arch, params, ids, key, epsilon)
    return virtual_adversarial_kl(arch, params, ids, weight, key, z_clean, r_vadv)


class PerturbationStrength:
    """How strongly (0 to 1) a step perturbs its batch: a guard against adversarial training that stalls.

    A perturbation that helps once the model has learned something can keep a model at chance from
    the first step for good: on short texts each word moves a lot (IMDB's first sentences never
    left chance at 0.3 word lengths, where whole reviews learn at once). So the strength is 1
    unless the training loss, over the last WINDOW steps, is still at chance (above HOLD x log K)
    after STALL steps; it is then 0 until that loss falls below it, and grows back to 1 over RAMP
    steps. The state at an epoch's start comes from the previous epoch's mean loss (below
    the line: full strength; above: held until learning starts), so a resumed run computes what an
    uninterrupted one does.
    """

    WINDOW, HOLD, STALL, RAMP = 20, 0.95, 200, 100

    def __init__(self, n_classes, previous_epoch_loss=None):
        self.threshold = self.HOLD * float(np.log(max(n_classes, 2)))
        self.learned = previous_epoch_loss is not None and previous_epoch_loss < self.threshold
        self.held = previous_epoch_loss is not None and not self.learned
        self.resumed_at = None
        self.recent = []

    def observe(self, step, mean_loss):
        """The loss per example of a finished step (read one step behind)."""
        if self.learned:
            return
        self.recent = (self.recent + [mean_loss])[-self.WINDOW :]
        if len(self.recent) == self.WINDOW and sum(self.recent) / self.WINDOW < self.threshold:
            self.learned = True
            if self.held:
                self.resumed_at = step
        elif step >= self.STALL:
            self.held = True

    def __call__(self, step):
        if self.resumed_at is not None:
            return min(1.0, (step - self.resumed_at) / self.RAMP)
        return 0.0 if self.held else 1.0


def warn_if_stalled(class_names, history, adversarial):
    """Print a warning when the epoch's training loss is still at chance under an --adversarial perturbation."""
    chance = float(np.log(len(class_names)))
    if adversarial and history["loss"][-1] > 0.99 * chance:
        print(
            f"warning: the training loss is still at chance ({chance:.3f}); an --adversarial perturbation "
            f"this large ({adversarial}) can stop learning altogether (it is held off until the loss leaves chance; "
            "if it never does, try a smaller one)",
            flush=True,
        )
