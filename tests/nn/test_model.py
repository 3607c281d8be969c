"""The classifier: fused embedding path, learning, losses, save/load, and the Keras-like API."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import small_model, synthetic_reviews
from lstmkit import LstmkitError
from lstmkit.data.text import TextVectorizer
from lstmkit.io.checkpoint import read_config
from lstmkit.nn.layers import (
    LSTM,
    Bidirectional,
    Dense,
    Embedding,
    GlobalMaxPool,
    MaxMeanPool,
)
from lstmkit.nn.model import Sequential, load_model


def test_fused_embedding_path_equals_plain_layers():
    """(table W_x)[ids] inside the LSTM must equal looking up the embedding first, values and grads."""
    model = Sequential([Embedding(50, 8, mask_zero=True), Bidirectional(LSTM(6)), Dense(1, "sigmoid")])
    params = model.build(seed=3)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 50, (4, 7)).astype(np.int32)
    ids[1, 4:] = 0
    ids[3, :] = 0  # a fully padded row

    def plain(params, ids):
        x, mask = model.layers[0].apply(params[0], ids, None)
        x, _ = model.layers[1].apply(params[1], x, mask)
        return model.layers[2].logits(params[2], x)

    def fused(params, ids):
        return model.apply(params, ids, logits=True)

    np.testing.assert_allclose(fused(params, ids), plain(params, ids), atol=1e-6)
    g_fused = jax.grad(lambda p: fused(p, ids).sum())(params)
    g_plain = jax.grad(lambda p: plain(p, ids).sum())(params)
    for a, b in zip(jax.tree.leaves(g_fused), jax.tree.leaves(g_plain)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_overfit_one_batch():
    model = Sequential([Embedding(20, 8, mask_zero=True), Bidirectional(LSTM(8)), Dense(1, "sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", learning_rate=1e-2)
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 20, (16, 10)).astype(np.int32)
    y = rng.integers(0, 2, 16)
    model.fit(ids, y, epochs=60, batch_size=16, verbose=False, bucket=False)
    loss, acc = model.evaluate(ids, y)
    assert acc == 1.0 and loss < 0.1


def test_keras_like_api_learns_held_out():
    train_x, train_y = synthetic_reviews(1200, seed=0)
    test_x, test_y = synthetic_reviews(300, seed=1)
    model = small_model(MaxMeanPool())
    model.vectorizer.adapt(train_x)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], learning_rate=5e-3)
    history = model.fit(train_x, train_y, epochs=3, batch_size=32, validation_data=(test_x, test_y), verbose=False)
    assert len(history["loss"]) == 3 and history["loss"][-1] < history["loss"][0]
    loss, accuracy = model.evaluate(test_x, test_y)
    assert accuracy > 0.9, accuracy
    proba = model.predict(["a great and lovely movie", "", "dull awful boring"])
    assert proba.shape == (3, 1) and np.all(np.isfinite(proba))
    assert proba[0, 0] > 0.5 > proba[2, 0]


def test_predict_keeps_input_order_and_handles_unknown_words():
    texts, labels = synthetic_reviews(200, seed=2)
    model = small_model()
    model.vectorizer.adapt(texts)
    model.compile()
    model.build(seed=0)
    mixed = [texts[5], "zzz qqq unknownword", texts[9], "", texts[5]]
    proba = model.predict(mixed, batch_size=2)
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba[0], proba[4], atol=1e-6)
    one = model.predict([texts[9]])
    np.testing.assert_allclose(one[0], proba[2], atol=1e-5)


def test_binary_loss_is_stable_for_huge_logits():
    model = Sequential([Embedding(5, 2), LSTM(2), GlobalMaxPool(), Dense(1, "sigmoid")])
    with pytest.raises(LstmkitError, match="return_sequences"):
        model.build(seed=0)
        model.apply(model.params, jnp.ones((1, 3), jnp.int32))
    model = Sequential([Embedding(5, 2), Bidirectional(LSTM(2)), Dense(1, "sigmoid")])
    params = model.build(seed=0)
    params[2]["b"] = jnp.array([1e4])
    loss, _ = model.loss_fn(params, jnp.ones((2, 3), jnp.int32), jnp.array([0, 1]), jnp.ones(2))
    assert np.isfinite(float(loss)) and float(loss) == pytest.approx(5e3, rel=1e-3)


def test_multiclass_softmax():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 30, (90, 6)).astype(np.int32)
    y = (ids[:, 0] % 3).astype(np.int32)  # the class is in the first token
    model = Sequential([Embedding(30, 8, mask_zero=True), LSTM(16, go_backwards=True), Dense(3, "softmax")])
    model.compile(loss="sparse_categorical_crossentropy", learning_rate=2e-2)
    model.fit(ids, y, epochs=40, batch_size=32, verbose=False)
    assert model.predict(ids).shape == (90, 3)
    assert model.evaluate(ids, y)[1] > 0.9


def test_soft_targets_are_cross_entropy_against_probabilities():
    """Self-training's soft pseudo-labels: -p log q - (1-p) log(1-q) (binary), -sum p log q (K classes);
    the hard labels 0 and 1 (or one-hot rows) as floats give the integer labels' loss exactly."""
    rng = np.random.default_rng(0)
    ids = jnp.asarray(rng.integers(1, 20, (5, 4)).astype(np.int32))
    ones = jnp.ones(5)
    binary = Sequential([Embedding(20, 4, mask_zero=True), Bidirectional(LSTM(3)), Dense(1, "sigmoid")])
    params = binary.build(seed=1)
    q = np.asarray(binary.apply(params, ids), np.float64)[:, 0]
    p = np.array([0.0, 0.3, 0.5, 0.9, 1.0], np.float32)
    loss, correct = binary.loss_fn(params, ids, jnp.asarray(p), ones)
    expected = -np.mean(p * np.log(q) + (1 - p) * np.log(1 - q))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(correct) == np.sum((q >= 0.5) == (p >= 0.5))
    hard = np.array([0, 1, 1, 0, 1])
    assert float(binary.loss_fn(params, ids, jnp.asarray(hard.astype(np.float32)), ones)[0]) == float(
        binary.loss_fn(params, ids, jnp.asarray(hard), ones)[0]
    )

    three = Sequential([Embedding(20, 4, mask_zero=True), Bidirectional(LSTM(3)), Dense(3, "softmax")])
    params = three.build(seed=2)
    q = np.asarray(three.apply(params, ids), np.float64)
    p = rng.dirichlet(np.ones(3), 5).astype(np.float32)
    loss, correct = three.loss_fn(params, ids, jnp.asarray(p), ones)
    assert float(loss) == pytest.approx(-np.mean(np.sum(p * np.log(q), axis=1)), rel=1e-5)
    assert float(correct) == np.sum(q.argmax(1) == p.argmax(1))
    y = np.array([2, 0, 1, 1, 0])
    one_hot = jnp.asarray(np.eye(3, dtype=np.float32)[y])
    assert float(three.loss_fn(params, ids, one_hot, ones)[0]) == pytest.approx(
        float(three.loss_fn(params, ids, jnp.asarray(y), ones)[0]), rel=1e-6
    )


def test_fit_on_float_hard_labels_equals_fit_on_integer_labels():
    """Soft targets travel through batching and the jitted step as floats; 0.0/1.0 learn exactly as 0/1."""
    texts, y = synthetic_reviews(96, seed=5)
    runs = []
    for labels in (y, y.astype(np.float32)):
        model = small_model()
        model.compile(learning_rate=1e-2)
        model.vectorizer.adapt(texts)
        history = model.fit(texts, labels, epochs=2, batch_size=32, seed=0, verbose=False)
        runs.append((history["loss"], jax.tree.leaves(model.params)))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-6)
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_save_load_roundtrip_and_corruption(tmp_path):
    texts, labels = synthetic_reviews(100, seed=3)
    model = small_model()
    model.vectorizer.adapt(texts)
    model.class_names = ["neg", "pos"]
    model.compile()
    model.build(seed=1)
    out = tmp_path / "model"
    model.save(out)
    loaded = load_model(out)
    assert loaded.class_names == ["neg", "pos"]
    np.testing.assert_allclose(loaded.predict(texts[:7]), model.predict(texts[:7]), atol=1e-6)
    assert not list(tmp_path.glob(".*tmp*")), "no temporary files are left behind"

    # Saving again over it swaps atomically and leaves no .old behind.
    model.save(out)
    assert not (tmp_path / "model.old").exists()

    weights = out / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(LstmkitError, match="corrupted"):
        load_model(out)

    model.save(out)
    config = json.loads((out / "config.json").read_text())
    config["format_version"] = 99
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(LstmkitError, match="newer"):
        read_config(out)
    (out / "config.json").unlink()
    with pytest.raises(LstmkitError, match="config.json"):
        load_model(out)
    with pytest.raises(LstmkitError, match="does not exist"):
        load_model(tmp_path / "nope")


def test_interrupted_swap_falls_back_to_previous_version(tmp_path):
    texts, _ = synthetic_reviews(50, seed=4)
    model = small_model()
    model.vectorizer.adapt(texts)
    model.compile()
    model.build(seed=2)
    out = tmp_path / "m"
    model.save(out)
    out.rename(tmp_path / "m.old")  # as if the process died between the two renames
    np.testing.assert_allclose(load_model(out).predict(texts[:3]), model.predict(texts[:3]), atol=1e-6)


def test_errors_are_clear():
    with pytest.raises(LstmkitError, match="compile"):
        Sequential([Embedding(5, 2), LSTM(2), Dense(1, "sigmoid")]).fit(np.ones((2, 3), np.int32), [0, 1])
    with pytest.raises(LstmkitError, match="activation"):
        Dense(3, "swish")
    with pytest.raises(LstmkitError, match="Bidirectional wraps"):
        Bidirectional(Dense(3))
    with pytest.raises(LstmkitError, match="weights"):
        Sequential([Embedding(5, 2), LSTM(2), Dense(1)]).predict(np.ones((2, 3), np.int32))


def test_weight_average_is_the_moving_average_of_the_weights():
    """avg <- d avg + (1-d) w after each step, d = min(decay, (1+n)/(10+n)); updates pass unchanged."""
    import optax

    from lstmkit.nn.optim import averaged_weights, weight_average

    opt = optax.chain(optax.sgd(0.1), weight_average(0.9))
    w = {"a": jnp.array([1.0, -2.0])}
    state = opt.init(w)
    expected = np.array([1.0, -2.0])
    for n in range(30):
        grads = {"a": jnp.array([1.0, 0.5]) * (n % 3 - 1)}
        updates, state = opt.update(grads, state, w)
        np.testing.assert_allclose(updates["a"], -0.1 * grads["a"], rtol=1e-6)  # passed through unchanged
        w = optax.apply_updates(w, updates)
        d = min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * np.asarray(w["a"])
    np.testing.assert_allclose(averaged_weights(state)["a"], expected, rtol=1e-5)
    assert averaged_weights(optax.adam(1e-3).init(w)) is None


def test_fit_validates_and_finishes_with_the_averaged_weights():
    from lstmkit.nn.optim import averaged_weights, make_optimizer

    train_x, train_y = synthetic_reviews(300, seed=0)
    model = small_model(MaxMeanPool())
    model.vectorizer.adapt(train_x)
    model.compile(optimizer=make_optimizer("adam", 5e-3, average=0.99), loss="binary_crossentropy")
    history = model.fit(train_x, train_y, epochs=2, batch_size=32, validation_data=(train_x, train_y), verbose=False)
    average = averaged_weights(model.opt_state)
    for a, b in zip(jax.tree.leaves(model.params), jax.tree.leaves(average)):
        np.testing.assert_array_equal(a, b)
    loss, _ = model.evaluate(train_x, train_y)
    assert abs(loss - history["val_loss"][-1]) < 1e-5  # validation used the same (averaged) weights
    with pytest.raises(LstmkitError, match="weight-average"):
        make_optimizer("adam", average=1.5)


def test_inference_length_reads_more_of_a_text_than_training(tmp_path):
    """Trained on the first 24 tokens, a model with inference_length 200 predicts from up to 200:
    the same as the model applied to all of the text's ids; the setting survives save/load."""
    from lstmkit.io.checkpoint import save_model

    train_x, train_y = synthetic_reviews(200, seed=0)
    model = small_model(MaxMeanPool())
    model.inference_length = 200
    model.vectorizer.adapt(train_x)
    model.compile(optimizer="adam", loss="binary_crossentropy", learning_rate=5e-3)
    model.fit(train_x, train_y, epochs=1, batch_size=32, verbose=False)
    long_text = " ".join(["the movie was dull"] * 10 + ["great superb lovely"] * 30)  # 130 tokens, praise after 24
    ids = model.vectorizer.encode_ragged([long_text], max_length=0)[0]
    assert len(ids) == 130 and len(model._ids([long_text])[0]) == 24
    full = model.apply(model.params, jnp.asarray(ids[None]))
    np.testing.assert_allclose(model.predict([long_text]), full, atol=1e-6)
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.inference_length == 200
    np.testing.assert_allclose(again.predict([long_text]), full, atol=1e-6)


def test_word_dropout_replaces_real_tokens_by_unk_in_training_only():
    from lstmkit.nn.layers import WordDropout

    ids = jnp.asarray(np.random.default_rng(0).integers(2, 50, (64, 40)).astype(np.int32)).at[:, 30:].set(0)
    layer = WordDropout(0.25)
    out, _ = layer.apply({}, ids, None, key=jax.random.key(1))
    dropped = np.asarray(out != ids)
    assert np.all(np.asarray(out)[dropped] == 1) and not dropped[:, 30:].any()  # [UNK], padding kept
    assert 0.2 < dropped[:, :30].mean() < 0.3
    np.testing.assert_array_equal(layer.apply({}, ids, None, key=None)[0], ids)  # inference: identity


def test_word_dropout_model_trains_saves_and_explains(tmp_path):
    from lstmkit.explain.report import explain
    from lstmkit.io.checkpoint import save_model
    from lstmkit.nn.layers import WordDropout

    train_x, train_y = synthetic_reviews(300, seed=0)
    v = TextVectorizer(max_tokens=32, output_sequence_length=24)
    model = Sequential(
        [
            v,
            WordDropout(0.1),
            Embedding(32, 8, mask_zero=True),
            Bidirectional(LSTM(8, return_sequences=True)),
            MaxMeanPool(),
            Dense(1, "sigmoid"),
        ]
    )
    v.adapt(train_x)
    model.compile(optimizer="adam", loss="binary_crossentropy", learning_rate=1e-2)
    model.fit(train_x, train_y, epochs=3, batch_size=32, verbose=False)
    assert model.evaluate(train_x, train_y)[1] > 0.85
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    np.testing.assert_allclose(again.predict(train_x[:5]), model.predict(train_x[:5]), atol=1e-6)
    e = explain(again, "a great and lovely movie")
    assert e["label"] == "1" and abs(e["probability"] - float(again.predict(["a great and lovely movie"])[0, 0])) < 1e-5


def test_inference_fuses_embedding_and_lstm_past_dropout():
    """At inference SpatialDropout1D is the identity, so the fused path (projected table) runs and
    must equal the plain layers; in training (a key) the dropout applies."""
    from lstmkit.nn.layers import SpatialDropout1D

    model = Sequential(
        [Embedding(50, 8, mask_zero=True), SpatialDropout1D(0.3), Bidirectional(LSTM(6)), Dense(1, "sigmoid")]
    )
    params = model.build(seed=3)
    ids = np.random.default_rng(0).integers(1, 50, (4, 20)).astype(np.int32)
    x, mask = model.layers[0].apply(params[0], ids, None)
    x, _ = model.layers[2].apply(params[2], x, ids != 0)
    plain = model.layers[3].apply(params[3], x, None)[0]
    bilstm, calls = model.layers[2], []
    real_apply = bilstm.apply
    bilstm.apply = lambda *a, **kw: calls.append("embedding" in kw) or real_apply(*a, **kw)  # spy: fused or not
    np.testing.assert_allclose(model.apply(params, ids), plain, atol=1e-6)
    trained = model.apply(params, ids, key=jax.random.key(0))
    assert calls == [True, False]  # fused at inference; in training the dropout sits in between
    assert not np.allclose(trained, plain)  # dropout on in training


def test_adversarial_perturbation_is_epsilon_token_lengths_along_the_gradient():
    from lstmkit.nn.adversarial import adversarial_perturbation

    rng = np.random.default_rng(0)
    g = jnp.asarray(rng.normal(size=(3, 5, 4)), jnp.float32).at[2].set(0.0)  # row 2: padding
    embedded = jnp.asarray(rng.normal(size=(3, 5, 4)), jnp.float32)
    mask = jnp.asarray(np.arange(5) < np.array([[5], [3], [0]]))  # lengths 5, 3, 0
    r = adversarial_perturbation(g, embedded, mask, 0.7)
    lengths = np.linalg.norm(np.asarray(embedded), axis=-1)  # (3, 5) token vector lengths
    token_rms = [np.sqrt((lengths[0] ** 2).mean()), np.sqrt((lengths[1, :3] ** 2).mean()), 0.0]
    np.testing.assert_allclose(
        np.linalg.norm(np.asarray(r).reshape(3, -1), axis=1), 0.7 * np.array(token_rms), rtol=1e-5
    )
    cosine = (r[0] * g[0]).sum() / (jnp.linalg.norm(r[0]) * jnp.linalg.norm(g[0]))
    np.testing.assert_allclose(cosine, 1.0, atol=1e-6)
    # scale-free: embeddings ten times larger get a perturbation ten times larger
    np.testing.assert_allclose(adversarial_perturbation(g, 10 * embedded, mask, 0.7), 10 * r, rtol=1e-5)


def test_perturbation_enters_after_the_embedding_and_zero_changes_nothing():
    """perturb=0 (plain layers) equals the fused path; the adversarial direction raises the loss more
    than a random one of the same size, so it is the loss gradient's direction, on the right tensor."""
    from lstmkit.nn.adversarial import adversarial_perturbation

    model = Sequential([Embedding(50, 8, mask_zero=True), Bidirectional(LSTM(6)), Dense(1, "sigmoid")])
    params = model.build(seed=3)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 50, (6, 9)).astype(np.int32)
    ids[1, 5:] = 0
    labels, weight = jnp.asarray(rng.integers(0, 2, 6)), jnp.ones(6)
    zero = jnp.zeros((6, 9, 8))
    np.testing.assert_allclose(model.apply(params, ids, perturb=zero), model.apply(params, ids), atol=1e-6)

    loss = lambda perturb: model.loss_fn(params, ids, labels, weight, perturb=perturb)[0]
    g = jax.grad(loss)(zero)
    assert np.all(np.asarray(g)[1, 5:] == 0)  # padded steps are masked: no gradient, no perturbation
    embedded, mask = model.layers[0].apply(params[0], ids, None)
    r_adv = adversarial_perturbation(g, embedded, mask, 2.0)
    r_random = adversarial_perturbation(
        jnp.asarray(rng.normal(size=g.shape), jnp.float32) * mask[..., None], embedded, mask, 2.0
    )
    assert loss(r_adv) > loss(r_random) and loss(r_adv) > loss(zero)


def test_adversarial_training_step_adds_the_perturbed_batch_gradient():
    """One `train_step` with adversarial=eps and plain SGD(lr=1) moves the weights by minus the sum
    of the clean gradient and the gradient at the perturbed embeddings, computed here by hand."""
    import optax

    from lstmkit.nn.adversarial import adversarial_perturbation
    from lstmkit.nn.steps import train_step

    model = Sequential([Embedding(30, 8, mask_zero=True), Bidirectional(LSTM(5)), Dense(1, "sigmoid")])
    model.compile(optimizer=optax.sgd(1.0))
    params = model.build(seed=1)
    rng = np.random.default_rng(2)
    ids = jnp.asarray(rng.integers(1, 30, (4, 7)).astype(np.int32))
    labels, weight = jnp.asarray(rng.integers(0, 2, 4)), jnp.ones(4)

    def loss(p, perturb):
        return model.loss_fn(p, ids, labels, weight, perturb=perturb)[0]

    zero = jnp.zeros((4, 7, 8))
    embedded, mask = model.layers[0].apply(params[0], ids, None)
    r_adv = adversarial_perturbation(jax.grad(loss, argnums=1)(params, zero), embedded, mask, 0.3)
    expected = jax.tree.map(
        lambda p, g0, g1: p - g0 - g1, params, jax.grad(loss)(params, zero), jax.grad(loss)(params, r_adv)
    )
    copy = jax.tree.map(jnp.copy, params)
    new, *_ = train_step(model.architecture, copy, model.optimizer.init(copy), ids, labels, weight, None, 0.3)
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    plain, *_ = train_step(
        model.architecture, jax.tree.map(jnp.copy, params), model.optimizer.init(params), ids, labels, weight, None, 0.0
    )
    assert not np.allclose(jax.tree.leaves(plain)[0], jax.tree.leaves(new)[0])


def test_adversarial_needs_an_embedding_and_a_nonnegative_size():
    model = Sequential([Bidirectional(LSTM(4)), Dense(1, "sigmoid")])
    model.compile()
    x, y = np.zeros((4, 3, 2), np.float32), np.array([0, 1, 0, 1])
    with pytest.raises(LstmkitError, match="no Embedding"):
        model.fit(x, y, adversarial=0.1, verbose=False)
    with pytest.raises(LstmkitError, match="--adversarial must be"):
        model.fit(x, y, adversarial=-1.0, verbose=False)


def test_adversarial_too_large_to_learn_gets_a_warning(capsys):
    model = Sequential([Embedding(20, 4, mask_zero=True), Bidirectional(LSTM(4)), Dense(1, "sigmoid")])
    model.compile(learning_rate=1e-9)  # nothing moves: the loss stays at chance, log 2
    ids = np.random.default_rng(0).integers(1, 20, (8, 5)).astype(np.int32)
    model.fit(ids, np.array([0, 1] * 4), epochs=1, batch_size=8, progress=False, adversarial=5.0)
    assert "warning: the training loss is still at chance" in capsys.readouterr().out


def test_ctrl_c_during_an_epoch_leaves_the_last_steps_weights(monkeypatch):
    """Each step donates its input arrays; an interrupted fit must not leave the model holding them."""
    from lstmkit.nn import train

    texts, labels = synthetic_reviews(256, seed=4)
    model = small_model()
    model.vectorizer.adapt(texts)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    real = train.training_batches

    def interrupted(*args, **kwargs):
        for k, batch in enumerate(real(*args, **kwargs)):
            if k == 2:
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(train, "training_batches", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.fit(texts, labels, epochs=1, batch_size=32, verbose=False)
    assert model.predict(texts[:4]).shape == (4, 1)  # the weights are live arrays, not donated ones


def test_a_small_request_is_predicted_at_its_own_size():
    """One text of 70 tokens: one (1, 72) batch (72 = 70 rounded up to 8), not a batch of 256 rows
    at the inference length; three texts: 4 rows. The probabilities equal those of full batches."""
    from lstmkit.nn import batches

    texts, _ = synthetic_reviews(40, seed=2)
    model = small_model(length=24, inference_length=200)
    model.vectorizer.adapt(texts)
    model.build(seed=0)
    long_text = " ".join(" ".join(texts).split()[:70])
    ids = model._ids([long_text], inference=True)
    assert len(ids[0]) == 70
    assert [b.ids.shape for b in batches.inference_batches(model, ids, None, 256)] == [(1, 72)]
    three = model._ids(texts[:3], inference=True)
    assert [b.ids.shape[0] for b in batches.inference_batches(model, three, None, 256)] == [4]
    many = [long_text, *texts[:300]] * 7  # more than a batch: the padded shapes as before
    alone = [float(model.predict([t], batch_size=256)[0, 0]) for t in (long_text, texts[0], texts[1])]
    together = model.predict(many, batch_size=64)[[0, 1, 2], 0]
    np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-6)


def _ensemble(seeds=(0, 1, 2)):
    """A small model holding three members built with different seeds (untrained: their
    probabilities differ from text to text and from member to member)."""
    texts, labels = synthetic_reviews(40, seed=5)
    model = small_model(MaxMeanPool())
    model.vectorizer.adapt(texts)
    members = [Sequential.init_params(model, jax.random.key(s)) for s in seeds]
    model.params, model.ensemble = members[0], tuple(members[1:])
    model.class_names = ["neg", "pos"]
    return model, texts, labels


def test_an_ensemble_predicts_the_mean_of_its_members_and_is_scored_on_it(tmp_path):
    model, texts, labels = _ensemble()
    alone = []
    for params in model.members:  # each member as a model of its own
        member = small_model(MaxMeanPool())
        member.vectorizer = model.vectorizer
        alone.append(np.asarray(member.set_weights(params).predict(texts, calibrated=False)))
    want = np.mean(alone, axis=0)
    got = np.asarray(model.predict(texts, calibrated=False))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert np.abs(alone[0] - want).max() > 1e-3  # the members differ: the mean is not the first
    # its loss is the cross-entropy of the mean probability (numpy, from the predictions above)
    p = np.clip(want[:, 0].astype(np.float64), 1e-7, 1 - 1e-7)
    log_loss = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    loss, accuracy = model.compile(loss="binary_crossentropy").evaluate(texts, labels)
    assert loss == pytest.approx(log_loss, rel=1e-4)
    assert accuracy == pytest.approx(np.mean((want[:, 0] >= 0.5) == labels))
    model.save(tmp_path / "m")  # every member travels with the directory
    loaded = load_model(tmp_path / "m")
    assert len(loaded.members) == 3 and read_config(tmp_path / "m")[1]["model"]["members"] == 3
    assert sorted(p.name for p in (tmp_path / "m").glob("weights*")) == [
        "weights-member2.safetensors",
        "weights-member3.safetensors",
        "weights.safetensors",
    ]
    np.testing.assert_array_equal(np.asarray(loaded.predict(texts, calibrated=False)), got)
