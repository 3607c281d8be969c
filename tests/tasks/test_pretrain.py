"""Language-model pretraining: it learns, its directory round-trips, `train --pretrained` adopts it exactly."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from click.testing import CliRunner

from lstmkit.cli import main
from lstmkit.errors import LstmkitError
from lstmkit.io import checkpoint
from lstmkit.nn.model import load_model
from lstmkit.tasks import lm, pretrain
from lstmkit.tasks.classifier import build_model
from lstmkit.tasks.presets import resolve

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
# Small sizes shared by the LM and the classifier that adopts it.
SIZES = {"max_tokens": 16, "embedding_dim": 8, "lstm_units": 12, "sequence_length": 32}
SIZE_FLAGS = ["--max-tokens", "16", "--embedding-dim", "8", "--lstm-units", "12", "--sequence-length", "32"]


def cycle_texts(n, seed):
    """Texts that walk the word cycle from a random start: each next (and previous) word is determined."""
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(n):
        start, length = int(rng.integers(len(WORDS))), int(rng.integers(20, 31))
        texts.append(" ".join(WORDS[(start + k) % len(WORDS)] for k in range(length)))
    return texts


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    path = root / "corpus.txt"
    path.write_text("\n".join(cycle_texts(400, seed=1)) + "\n")
    labelled = root / "labelled.csv"
    texts = cycle_texts(120, seed=2)
    labelled.write_text(
        "text,label\n" + "".join(f"{t},{'even' if WORDS.index(t.split()[0]) % 2 == 0 else 'odd'}\n" for t in texts)
    )
    return path, labelled


@pytest.fixture(scope="module")
def pretrained(corpus, tmp_path_factory):
    """A bidirectional LM trained with the sampled softmax, through the CLI."""
    out = tmp_path_factory.mktemp("lm") / "lm"
    args = [
        "pretrain",
        "--unlabeled",
        str(corpus[0]),
        "--out",
        str(out),
        *SIZE_FLAGS,
        "--epochs",
        "15",
        "--negatives",
        "4",
        "--batch-size",
        "32",
        "--learning-rate",
        "0.02",
        "--quiet",
    ]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    return out, r.output


def test_lm_learns_the_next_token_pattern(pretrained):
    out, output = pretrained
    history = json.loads((out / "history.json").read_text())
    uniform = len(WORDS) + 1 - 1  # K = words + [UNK] + padding; padding is never a class
    assert len(history["val_perplexity"]) == 15
    assert history["loss"][-1] < history["loss"][0] and history["val_loss"][-1] < history["val_loss"][0]
    # Both directions read a deterministic cycle: perplexity far below uniform (10).
    assert history["val_perplexity_forward"][-1] < 0.2 * uniform, history
    assert history["val_perplexity_backward"][-1] < 0.2 * uniform, history
    assert "tokens/s" in output and "perplexity" in output


def test_sampled_softmax_equals_the_exact_one_when_every_word_is_drawn():
    rng = np.random.default_rng(0)
    N, H, K = 7, 5, 9
    h, W, b = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in ((N, H), (H, K), (K,)))
    target = jnp.asarray(rng.integers(1, K, N))
    exact = lm.full_softmax_nll(h[None], W, b, target[None])[0]
    logits = (h @ W + b)[:, 1:]  # the padding column is no class
    assert np.allclose(exact, optax.softmax_cross_entropy_with_integer_labels(logits, target - 1), atol=1e-5)
    # Every word once, uniform q: the correction is a constant, the target's own draw an accidental hit.
    log_expected = jnp.zeros(K)
    sampled = lm.sampled_softmax_nll(h, W, b, target, jnp.arange(1, K), log_expected)
    assert np.allclose(sampled, exact, atol=1e-5)


def test_targets_shift_by_direction_and_map_rare_ids_to_unk():
    ids = jnp.array([[5, 2, 9, 3, 0]])
    mask = ids != 0
    target, valid = lm.lm_targets(ids, mask, "forward", n_outputs=8)
    assert target.tolist() == [[2, 1, 3, 1, 1]] and valid.tolist() == [[True, True, True, False, False]]
    target, valid = lm.lm_targets(ids, mask, "backward", n_outputs=8)
    assert target.tolist() == [[1, 5, 2, 1, 1]] and valid.tolist() == [[False, True, True, True, False]]


def test_directory_round_trip_and_checksum(tmp_path, pretrained):
    pre = pretrain.load_pretrained(pretrained[0])
    assert pre.config.bidirectional and pre.config.embedding_dim == 8 and pre.vectorizer.vocab_size == 12
    copy = tmp_path / "copy"
    pretrain.save_pretrained(copy, pre.params, pre.vectorizer, pre.config, pre.history, pre.corpus)
    again = pretrain.load_pretrained(copy)
    for a, b in zip(jax.tree.leaves(pre.params), jax.tree.leaves(again.params)):
        assert np.array_equal(a, b)
    assert again.vectorizer.vocabulary == pre.vectorizer.vocabulary and again.config == pre.config
    weights = copy / checkpoint.WEIGHTS
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 1
    weights.write_bytes(bytes(raw))
    with pytest.raises(LstmkitError, match="checksum"):
        pretrain.load_pretrained(copy)


def _classifier(**overrides):
    config = resolve("default", **{**SIZES, "dense_units": 8, **overrides})
    model = build_model(config, 2, steps_per_epoch=4)
    model.build(seed=5)
    return model


def test_install_puts_exactly_the_pretrained_weights_in(pretrained):
    pre = pretrain.load_pretrained(pretrained[0])
    model = pretrain.install_pretrained(_classifier(), pre)
    assert model.vectorizer.vocabulary == pre.vectorizer.vocabulary
    assert np.array_equal(model.params[0]["table"], pre.params["embedding"]["table"])
    lstm = next(p for p in model.params if "forward" in p)
    for d in ("forward", "backward"):
        for k in ("W_x", "W_h", "b"):
            assert np.array_equal(lstm[d][k], pre.params["lstm"][d][k]), (d, k)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"embedding_dim": 16}, "--embedding-dim 8"),
        ({"lstm_units": 4}, "--lstm-units 12"),
        ({"bidirectional": False}, "--bidirectional"),
        ({"max_tokens": 40}, "--max-tokens 16"),
    ],
)
def test_mismatched_sizes_are_refused(pretrained, overrides, message):
    pre = pretrain.load_pretrained(pretrained[0])
    with pytest.raises(LstmkitError, match=message):
        pretrain.install_pretrained(_classifier(**overrides), pre)
    with pytest.raises(LstmkitError, match=message):
        pretrain.check_settings(pre, resolve("default", **{**SIZES, **overrides}))


def test_train_pretrained_starts_from_the_pretrained_weights(pretrained, corpus, tmp_path):
    # A learning rate of 0 keeps the weights as they start: the saved model shows what was installed
    # (no weight average, whose float32 arithmetic would round them).
    out = tmp_path / "model"
    args = [
        "train",
        "--data",
        str(corpus[1]),
        "--out",
        str(out),
        "--pretrained",
        str(pretrained[0]),
        *SIZE_FLAGS,
        "--dense-units",
        "8",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--learning-rate",
        "0",
        "--weight-average",
        "0",
        "--quiet",
    ]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "pretrained: vocabulary" in r.output and "vocabulary: " not in r.output.replace("pretrained: vocabulary", "")
    pre, model = pretrain.load_pretrained(pretrained[0]), load_model(out)
    assert model.vectorizer.vocabulary == pre.vectorizer.vocabulary
    assert np.array_equal(model.params[0]["table"], pre.params["embedding"]["table"])
    lstm = next(p for p in model.params if "forward" in p)
    assert np.array_equal(lstm["backward"]["W_h"], pre.params["lstm"]["backward"]["W_h"])
    assert model.train_config["pretrained"] == str(pretrained[0])


def test_cli_mistakes_are_one_line(pretrained, corpus, tmp_path):
    cases = [
        (["pretrain", "--out", str(tmp_path / "a")], "no text to pretrain on"),
        (["pretrain", "--unlabeled", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "a")], "does not exist"),
        (["pretrain", "--unlabeled", str(corpus[0]), "--out", str(tmp_path / "a"), "--epochs", "0"], "--epochs must be at least 1"),
        (["pretrain", "--unlabeled", str(corpus[0]), "--out", str(corpus[0].parent)], "not an lstmkit pretrained directory"),
        (["train", "--data", str(corpus[1]), "--pretrained", str(tmp_path / "nope"), "--out", str(tmp_path / "m")], "does not exist"),
        (["train", "--data", str(corpus[1]), "--pretrained", str(pretrained[0]), "--out", str(tmp_path / "m"), *SIZE_FLAGS, "--embedding-dim", "16"],
         "--embedding-dim 8"),
    ]  # fmt: skip
    (tmp_path / "odd.xyz").write_bytes(b"PK\x03\x04\x00\x00")  # binary: an unknown extension is read as text
    cases.append(
        (["pretrain", "--unlabeled", str(tmp_path / "odd.xyz"), "--out", str(tmp_path / "a")], "unknown file type")
    )
    for args, message in cases:
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2, (args, r.output)
        assert message in r.output and "Traceback" not in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1, r.output
