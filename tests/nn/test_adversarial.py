"""Virtual adversarial training (lstmkit.nn.adversarial), against NumPy and by its properties."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lstmkit import LstmkitError
from lstmkit.nn.adversarial import (
    kl_divergence,
    scaled_direction,
    virtual_adversarial_direction,
    virtual_adversarial_kl,
    virtual_adversarial_loss,
)
from lstmkit.nn.layers import LSTM, Bidirectional, Dense, Embedding
from lstmkit.nn.model import Sequential


def _model(classes=1, seed=1):
    activation = "sigmoid" if classes == 1 else "softmax"
    # 8 units: the fused C++ kernel runs (it takes multiples of 8), whose calls cannot be differentiated twice
    model = Sequential([Embedding(30, 8, mask_zero=True), Bidirectional(LSTM(8)), Dense(classes, activation)])
    model.compile(optimizer=optax.sgd(1.0))
    return model, model.build(seed=seed)


def _batch(seed=2, B=6, T=7):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 30, (B, T)).astype(np.int32)
    ids[1, 4:] = 0  # one padded text
    return jnp.asarray(ids), jnp.asarray(rng.integers(0, 2, B)), jnp.ones(B)


def _kl_numpy(p, q):
    """KL(p || q) between rows of probabilities, in float64."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    return np.sum(p * (np.log(p) - np.log(q)), axis=-1)


def test_kl_divergence_equals_numpy_for_one_logit_and_for_softmax():
    rng = np.random.default_rng(0)
    z_ref, z = rng.normal(size=(5, 1)) * 3, rng.normal(size=(5, 1)) * 3
    p, q = 1 / (1 + np.exp(-z_ref[:, 0])), 1 / (1 + np.exp(-z[:, 0]))
    expected = _kl_numpy(np.stack([p, 1 - p], -1), np.stack([q, 1 - q], -1))
    np.testing.assert_allclose(kl_divergence(jnp.asarray(z_ref), jnp.asarray(z)), expected, rtol=1e-5, atol=1e-7)
    z_ref, z = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    softmax = lambda a: np.exp(a) / np.exp(a).sum(-1, keepdims=True)
    np.testing.assert_allclose(
        kl_divergence(jnp.asarray(z_ref), jnp.asarray(z)), _kl_numpy(softmax(z_ref), softmax(z)), rtol=1e-5, atol=1e-7
    )
    assert np.allclose(kl_divergence(jnp.asarray(z), jnp.asarray(z)), 0.0, atol=1e-6)


@pytest.mark.parametrize("classes", [1, 3])
def test_virtual_adversarial_direction_changes_the_prediction_more_than_a_random_one(classes):
    """eps = 0 costs nothing; at eps > 0 the power iteration's direction moves the prediction more than
    random directions of the same size (it follows the gradient of the KL, on the embedded words)."""
    model, params = _model(classes)
    ids, _, weight = _batch()
    arch, key = model.architecture, jax.random.key(4)
    assert float(virtual_adversarial_loss(arch, params, ids, weight, key, 0.0)) == pytest.approx(0.0, abs=1e-9)
    vat = float(virtual_adversarial_loss(arch, params, ids, weight, key, 2.0))
    assert vat > 0
    embedded, mask = model.layers[0].apply(params[0], ids, None)
    z_clean = model.apply(params, ids, logits=True)
    rng = np.random.default_rng(5)
    random_kls = []
    for _ in range(8):
        d = jnp.asarray(rng.normal(size=embedded.shape), jnp.float32) * mask[..., None]
        r = scaled_direction(d, embedded, mask, 2.0)
        random_kls.append(float(kl_divergence(z_clean, model.apply(params, ids, logits=True, perturb=r)).mean()))
    assert vat > 2 * np.median(random_kls)


def test_training_step_adds_the_gradient_of_the_virtual_adversarial_loss():
    """One `train_step` with plain SGD(lr=1) and virtual_adversarial=eps moves the weights by minus the
    clean gradient minus the VAT loss's gradient; and the VAT term needs no labels (changing them
    changes only the clean part)."""
    from lstmkit.nn.steps import train_step

    model, params = _model()
    ids, labels, weight = _batch()
    arch = model.architecture

    def clean(p):
        return model.loss_fn(p, ids, labels, weight)[0]

    vat_key = jax.random.key(0)  # what the step uses when it is given no dropout key
    z_clean, r_vadv = virtual_adversarial_direction(arch, params, ids, vat_key, 0.5)
    vat_grad = jax.grad(virtual_adversarial_kl, argnums=1)(arch, params, ids, weight, vat_key, z_clean, r_vadv)
    expected = jax.tree.map(lambda p, g0, g1: p - g0 - g1, params, jax.grad(clean)(params), vat_grad)
    copy = jax.tree.map(jnp.copy, params)
    new, *_ = train_step(arch, copy, model.optimizer.init(copy), ids, labels, weight, None, 0.0, 0.5)
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(vat_grad))


def test_fit_with_virtual_adversarial_learns_and_refuses_a_negative_size():
    model, _ = _model()
    model.compile(optimizer="adam", learning_rate=0.01)
    rng = np.random.default_rng(0)
    ids = rng.integers(2, 30, (64, 6)).astype(np.int32)
    y = (ids[:, 0] < 16).astype(np.int32)  # the first word decides
    history = model.fit(ids, y, epochs=15, batch_size=16, virtual_adversarial=0.5, verbose=False)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    with pytest.raises(LstmkitError, match="--virtual-adversarial must be"):
        model.fit(ids, y, virtual_adversarial=-0.1, verbose=False)


def test_a_perturbation_that_stalls_learning_is_held_until_learning_starts():
    from lstmkit.nn.adversarial import PerturbationStrength

    learns = PerturbationStrength(2)  # leaves chance before STALL steps: full strength throughout
    for step in range(300):
        learns.observe(step, 0.693 if step < 100 else 0.5)
        assert learns(step + 1) == 1.0
    stalls = PerturbationStrength(2)
    for step in range(201):  # at chance: log 2 = 0.693 > 0.95 * 0.693 = 0.658
        stalls.observe(step, 0.693)
    assert stalls(201) == 0.0  # held from step 200 on
    for step in range(201, 240):  # learning: the mean of the last 20 steps falls below 0.658 ...
        stalls.observe(step, 0.60)
    assert stalls.resumed_at == 208  # ... after 8 steps at 0.60: 0.693 - 8 * 0.093 / 20 = 0.656
    assert stalls(208) == 0.0 and stalls(258) == 0.5 and stalls(308) == 1.0 and stalls(900) == 1.0
    assert PerturbationStrength(2, previous_epoch_loss=0.4)(0) == 1.0  # after an epoch that learned
    assert PerturbationStrength(2, previous_epoch_loss=0.69)(0) == 0.0  # after one at chance: held
    assert PerturbationStrength(10).threshold == pytest.approx(0.95 * np.log(10))


def test_a_training_step_at_strength_zero_fits_the_clean_batch_twice():
    """strength scales the perturbations: at 0 the adversarial copy of the batch is the batch itself,
    so SGD(lr=1) moves the weights by twice the clean gradient; at 1 by something else."""
    from lstmkit.nn.steps import train_step

    model, params = _model()
    ids, labels, weight = _batch()
    arch = model.architecture
    g = jax.grad(lambda p: model.loss_fn(p, ids, labels, weight)[0])(params)
    expected = jax.tree.leaves(jax.tree.map(lambda p, g: p - 2 * g, params, g))
    zero, full = (
        jax.tree.leaves(
            train_step(
                arch,
                jax.tree.map(jnp.copy, params),
                model.optimizer.init(params),
                ids,
                labels,
                weight,
                None,
                0.4,
                0.0,
                s,
            )[0]
        )
        for s in (0.0, 1.0)
    )
    for a, b in zip(zero, expected):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert any(not np.allclose(a, b, atol=1e-5) for a, b in zip(full, expected))
