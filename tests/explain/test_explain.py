"""explain: the traced pass equals the fast path; trajectory, occlusion, edge cases, CLI, page, interop."""

import json
import re

import jax
import numpy as np
import pytest
from click.testing import CliRunner

from helpers import synthetic_reviews as reviews
from lstmkit.cli import main
from lstmkit.data.text import TextVectorizer
from lstmkit.explain.page import render_html
from lstmkit.explain.report import explain, summary
from lstmkit.explain.trace import is_causal, traced_forward
from lstmkit.io.interop import from_torch_state_dict
from lstmkit.nn.from_weights import model_from_weights
from lstmkit.nn.layers import (
    LSTM,
    Bidirectional,
    Dense,
    Embedding,
    GlobalMaxPool,
    SpatialDropout1D,
)
from lstmkit.nn.model import Sequential


@pytest.fixture(scope="module")
def bilstm():
    """A trained BiLSTM (final states), sequence length 16: not causal, truncates."""
    texts, labels = reviews(300, seed=0)
    model = Sequential(
        [
            TextVectorizer(max_tokens=30, output_sequence_length=16),
            Embedding(30, 8, mask_zero=True),
            Bidirectional(LSTM(8)),
            Dense(1, "sigmoid"),
        ],
        class_names=["neg", "pos"],
    )
    model.vectorizer.adapt(texts)
    model.compile(learning_rate=2e-2)
    model.fit(texts, labels, epochs=3, batch_size=32, verbose=False, bucket=False)
    return model


@pytest.fixture(scope="module")
def causal():
    """Two stacked forward LSTMs, then Dense layers: causal; random weights."""
    texts, _ = reviews(50, seed=1)
    model = Sequential(
        [
            TextVectorizer(max_tokens=30, output_sequence_length=16),
            Embedding(30, 8, mask_zero=True),
            LSTM(6, return_sequences=True),
            LSTM(5),
            Dense(4, "relu"),
            Dense(1, "sigmoid"),
        ]
    )
    model.vectorizer.adapt(texts)
    model.build(seed=4)
    return model


@pytest.fixture(scope="module")
def pooled():
    """Spatial dropout, a reverse LSTM, max pooling, three classes, no truncation: prefixes run in two chunks."""
    texts, _ = reviews(50, seed=2)
    model = Sequential(
        [
            TextVectorizer(max_tokens=30),
            Embedding(30, 8, mask_zero=True),
            SpatialDropout1D(0.2),
            LSTM(6, go_backwards=True, return_sequences=True),
            GlobalMaxPool(),
            Dense(3, "softmax"),
        ],
        class_names=["a", "b", "c"],
    )
    model.vectorizer.adapt(texts)
    model.build(seed=5)
    return model


def test_traced_pass_gives_the_fast_path_probability(bilstm, causal, pooled):
    texts = ["the movie was great and lovely", "", "zzz qqq xyzzy", "bad " * 40]
    for model in (bilstm, causal, pooled):
        proba = model.predict(texts)
        for text, p in zip(texts, proba):
            e = explain(model, text)
            expected = [1 - p[0], p[0]] if p.shape[-1] == 1 else p
            np.testing.assert_allclose(e["probabilities"], expected, atol=1e-5)


def test_gates_are_per_token_per_direction(bilstm, causal):
    e = explain(bilstm, "the plot was dull but the actor was superb")
    assert e["n_used"] == 9 and [d["name"] for d in e["layers"][0]["directions"]] == ["forward", "backward"]
    for d in e["layers"][0]["directions"]:
        for key in ("i", "f", "o"):
            a = np.asarray(d[key])
            assert a.shape == (9, 8) and a.min() >= 0 and a.max() <= 1
        for key in ("g", "h"):
            assert np.abs(d[key]).max() <= 1
        np.testing.assert_allclose(d["mean_forget"], np.mean(d["f"], axis=1), atol=1e-3)
        np.testing.assert_allclose(d["cell_norm"], np.linalg.norm(d["c"], axis=1), atol=1e-3)
    # h = o * tanh(c) at every step, and the backward direction's last read token (token 0) gives
    # its final state: both traced in text order.
    d = e["layers"][0]["directions"][1]
    np.testing.assert_allclose(d["h"], np.asarray(d["o"]) * np.tanh(d["c"]), atol=2e-3)
    e2 = explain(causal, "a good movie")
    assert [len(lay["directions"][0]["h"][0]) for lay in e2["layers"]] == [6, 5]


@pytest.mark.parametrize("backward", ["bptt", "bptt-scan"])
def test_the_trace_is_the_models_own_forward_pass(backward):
    """The traced pass is `Architecture.apply(..., trace=True)`: the code training and predict run,
    down to the kernel ("bptt", float32 on the CPU) or the JAX scans ("bptt-scan"). So its logits
    equal the plain forward's bit for bit, its h are the layers' outputs, and its gates and states
    obey the cell's equations: c = f c_prev + i g, h = o tanh(c) on every real step."""
    model = Sequential(
        [
            Embedding(30, 8, mask_zero=True),
            Bidirectional(LSTM(8, return_sequences=True, backward=backward)),
            LSTM(8, go_backwards=True, return_sequences=True, backward=backward),
            LSTM(8, backward=backward),
            Dense(3, "softmax"),
        ]
    )
    params = model.build(seed=3)
    rng = np.random.default_rng(4)
    ids = rng.integers(1, 30, (4, 12)).astype(np.int32)
    for row, n in enumerate([12, 7, 3, 1]):
        ids[row, n:] = 0
    arch = model.architecture
    plain = jax.jit(lambda p, i: arch.apply(p, i, logits=True))(params, ids)
    logits, traces = jax.jit(lambda p, i: traced_forward(arch, p, i))(params, ids)
    np.testing.assert_array_equal(np.asarray(logits), np.asarray(plain))
    assert [t["h"].shape for t in traces] == [(2, 4, 12, 8), (1, 4, 12, 8), (1, 4, 12, 8)]

    real = (ids != 0)[None, :, :, None]  # (1, B, T, 1)
    x, mask = model.layers[0].apply(params[0], ids, None)
    hs, _ = model.layers[1].apply(params[1], x, mask)
    first = np.where(real, traces[0]["h"], 0.0)  # the output is 0 on padding, the carried h is not
    np.testing.assert_allclose(np.concatenate([first[0], first[1]], -1), hs, atol=1e-6)
    # Who reads the text which way: layer 1 forward and backward; layer 2 backward; layer 3 forward
    # over layer 2's reversed sequence, so backward in the text too.
    for trace, d, backward in [(traces[0], 0, False), (traces[0], 1, True), (traces[1], 0, True), (traces[2], 0, True)]:
        i, f, g, o, c, h = (np.asarray(trace[k][d], np.float64) for k in "ifgoch")  # each (B, T, H)
        zero = np.zeros_like(c[:, :1])  # the state before the first token read (padding leaves it)
        c_prev = np.concatenate([c[:, 1:], zero], 1) if backward else np.concatenate([zero, c[:, :-1]], 1)
        m = real[0]
        assert np.all(i[~m[..., 0]] == 0) and np.all(o[~m[..., 0]] == 0)  # nothing computed on masked steps
        np.testing.assert_allclose(np.where(m, f * c_prev + i * g, 0), np.where(m, c, 0), atol=1e-6)
        np.testing.assert_allclose(np.where(m, o * np.tanh(c), 0), np.where(m, h, 0), atol=1e-6)


def test_traces_stay_in_text_order_after_a_reversed_sequence():
    """LSTM(go_backwards, return_sequences) hands the next LSTM the sequence last token first (as
    Keras); that layer's trace is still per token in text order, and the probability is predict's."""
    texts, _ = reviews(50, seed=6)
    model = Sequential(
        [
            TextVectorizer(max_tokens=30, output_sequence_length=16),
            Embedding(30, 8, mask_zero=True),
            LSTM(6, go_backwards=True, return_sequences=True),
            LSTM(5, return_sequences=True),
            LSTM(4),
            Dense(1, "sigmoid"),
        ]
    )
    model.vectorizer.adapt(texts)
    model.build(seed=7)
    text = "the plot was dull but the actor was superb"
    e = explain(model, text)
    n = e["n_used"]
    assert not is_causal(model) and n == 9
    np.testing.assert_allclose(e["probabilities"][1], model.predict([text])[0, 0], atol=1e-5)
    # The layers by hand: the second reads text token n-1 first and token 0 last, the third (after
    # no reversal of its own) reads in the second's order, so both end on text token 0.
    ids = np.zeros((1, 16), np.int32)
    ids[0, :n] = e["ids"][:n]
    x, mask = model.layers[0].apply(model.params[0], ids, None)
    for layer, p in zip(model.layers[1:3], model.params[1:3]):
        x, mask = layer.apply(p, x, mask)
    final = model.layers[3].apply(model.params[3], x, mask)[0][0]
    second, third = (np.asarray(e["layers"][k]["directions"][0]["h"]) for k in (1, 2))
    assert second.shape == (n, 5) and third.shape == (n, 4)
    np.testing.assert_allclose(third[0], final, atol=2e-4)
    np.testing.assert_allclose(second, np.flip(np.asarray(x[0]), 0)[:n], atol=2e-4)  # x[0, 15 - t] read token t


def test_trajectory_is_the_probability_of_each_prefix(bilstm, causal, pooled):
    assert is_causal(causal) and not is_causal(bilstm) and not is_causal(pooled)
    text = "the movie was boring but the actor was lovely and great"
    for model in (bilstm, causal):
        e = explain(model, text)
        prefixes = [" ".join(e["tokens"][: t + 1]) for t in range(e["n_used"])]
        expected = model.predict(prefixes)[:, 0]
        np.testing.assert_allclose(e["trajectory"], expected, atol=2e-4)
        assert e["trajectory"][-1] == pytest.approx(e["target_probability"], abs=2e-4)
    # No truncation and 70 tokens: two chunks of prefixes, and the predicted class as the target.
    text = " ".join(reviews(12, seed=3)[0])
    e = explain(pooled, text)
    assert e["n_used"] > 64
    k = pooled.class_names.index(e["target_class"])
    picks = [0, 5, 63, 64, e["n_used"] - 1]
    expected = pooled.predict([" ".join(e["tokens"][: t + 1]) for t in picks])[:, k]
    np.testing.assert_allclose(np.asarray(e["trajectory"])[picks], expected, atol=2e-4)
    occluded = [" ".join("qqqq" if j == t else w for j, w in enumerate(e["tokens"])) for t in (0, 64)]
    p = np.float64(e["target_probability"]), pooled.predict(occluded)[:, k].astype(np.float64)
    expected = np.log(p[0] / (1 - p[0])) - np.log(p[1] / (1 - p[1]))  # the softmax class's log-odds
    np.testing.assert_allclose(np.asarray(e["attribution"])[[0, 64]], expected, atol=2e-3)


def test_attribution_is_occlusion_by_unknown(bilstm):
    text = "the acting was awful but the movie was great"
    e = explain(bilstm, text)
    assert len(e["attribution"]) == e["n_used"] == 9
    occluded = [" ".join("qqqq" if j == t else w for j, w in enumerate(e["tokens"])) for t in range(9)]
    p = bilstm.predict(occluded)[:, 0].astype(np.float64)
    expected = np.log(e["target_probability"] / (1 - e["target_probability"])) - np.log(p / (1 - p))
    np.testing.assert_allclose(e["attribution"], expected, atol=2e-3)
    a = dict(zip(e["tokens"], e["attribution"]))
    assert a["great"] > 0 > a["awful"]  # the trained model learned which words matter
    assert a["acting"] == 0.0 and not e["known"][1]  # unknown: replacing [UNK] by [UNK] changes nothing
    lines = summary(e)
    assert "label: " in lines and "great" in lines.split("towards pos")[1].split("\n")[0]


def test_bigram_model_trajectory_and_occlusion_are_the_models_own_predictions():
    """With bigram vectors, occluding token t changes the pairs at t and t + 1: the attribution
    still equals the model's own prediction on the occluded text, and the trajectory its prefixes'."""
    texts, _ = reviews(50, seed=6)
    model = Sequential(
        [
            TextVectorizer(max_tokens=30, output_sequence_length=24),
            Embedding(30, 8, mask_zero=True, bigram_buckets=101),
            Bidirectional(LSTM(6, return_sequences=True)),
            GlobalMaxPool(),
            Dense(1, "sigmoid"),
        ]
    )
    model.vectorizer.adapt(texts)
    params = model.build(seed=7)
    params[0]["bigram_table"] = params[0]["bigram_table"] * 40  # pairs that matter, so a wrong pair shows
    model.set_weights(params)
    text = "the movie was boring but the actor was lovely and great and good"
    e = explain(model, text)
    n = e["n_used"]
    occluded = [" ".join("qqqq" if j == t else w for j, w in enumerate(e["tokens"])) for t in range(n)]
    p = model.predict(occluded)[:, 0].astype(np.float64)
    expected = np.log(e["target_probability"] / (1 - e["target_probability"])) - np.log(p / (1 - p))
    np.testing.assert_allclose(e["attribution"], expected, atol=2e-3)
    prefixes = [" ".join(e["tokens"][: t + 1]) for t in range(n)]
    np.testing.assert_allclose(e["trajectory"], model.predict(prefixes)[:, 0], atol=2e-4)


def test_empty_unknown_and_long_texts(bilstm):
    e = explain(bilstm, "  ?! ...  ")
    assert e["empty"] and e["n_tokens"] == e["n_used"] == 0
    assert e["trajectory"] == [] and e["attribution"] == [] and e["layers"][0]["directions"][0]["f"] == []
    assert any("empty" in n for n in e["notes"])
    e = explain(bilstm, "xyzzy plugh frob")
    assert e["attribution"] == [0.0, 0.0, 0.0] and any("None of the 3 tokens" in n for n in e["notes"])
    long_text = " ".join(["Great!"] + ["the", "movie"] * 30)
    e = explain(bilstm, long_text)
    assert (e["n_tokens"], e["n_used"], e["truncated"], e["sequence_length"]) == (61, 16, True, 16)
    assert len(e["trajectory"]) == len(e["attribution"]) == 16 and len(e["words"]) == 61
    assert e["words"][0] == "Great!" and e["tokens"][0] == "great"
    assert any("reads only the first 16" in n for n in e["notes"])
    np.testing.assert_allclose(e["probabilities"][1], bilstm.predict([long_text])[0, 0], atol=1e-5)


def test_words_keep_the_original_spelling(bilstm):
    e = explain(bilstm, "A GREAT film -- really, it's lovely!")
    assert e["words"] == ["A", "GREAT", "film", "really,", "it's", "lovely!"]
    assert e["tokens"] == ["a", "great", "film", "really", "its", "lovely"]


def test_cli_explain_text_json_html_png(bilstm, tmp_path):
    bilstm.save(tmp_path / "m")
    runner = CliRunner()
    r = runner.invoke(main, ["explain", str(tmp_path / "m"), "a lovely and great movie"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("label: pos") and "towards pos" in r.output
    html, png = tmp_path / "e.html", tmp_path / "e.png"
    r = runner.invoke(
        main, ["explain", str(tmp_path / "m"), "a dull movie", "--json", "--html", str(html), "--png", str(png)]
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    for key in (
        "label",
        "probability",
        "probabilities",
        "class_names",
        "tokens",
        "words",
        "ids",
        "known",
        "n_tokens",
        "n_used",
        "sequence_length",
        "truncated",
        "empty",
        "trajectory",
        "attribution",
        "layers",
        "memory",
        "methods",
        "notes",
    ):
        assert key in data, key
    assert data["label"] == "neg" and set(data["layers"][0]["directions"][0]) >= {
        "i",
        "f",
        "g",
        "o",
        "c",
        "h",
        "mean_forget",
        "cell_norm",
    }
    assert html.read_text().startswith("<!doctype html>") and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = runner.invoke(main, ["explain", str(tmp_path / "nope"), "text"])
    assert r.exit_code != 0 and "does not exist" in r.output


def test_html_page_is_self_contained(bilstm):
    text = 'great </script><script>alert("x")</script> <img src="http://example.com/a.png"> & more'
    page = render_html(explain(bilstm, text))
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<link" not in page and "@import" not in page and not re.search(r"url\(\s*['\"]?(https?:)?//", page)
    assert page.count("<script") == 2 and page.count("</script>") == 2  # the data cannot close its element
    data = page.split('<script id="explain-data" type="application/json">')[1].split("</script>")[0]
    assert json.loads(data)["text"] == text
    assert "__DATA__" not in page and "__TITLE__" not in page


def torch_lstm_reference(sd, x, layers, H):
    """A NumPy torch.nn.LSTM (bidirectional) on one sequence x (T, E); returns [h_n fwd, h_n bwd] of the last layer."""

    def run(W_ih, W_hh, b, xs):
        h, c, out = np.zeros(H), np.zeros(H), []
        for x_t in xs:
            z = W_ih @ x_t + W_hh @ h + b
            i, f, g, o = (
                1 / (1 + np.exp(-z[:H])),
                1 / (1 + np.exp(-z[H : 2 * H])),
                np.tanh(z[2 * H : 3 * H]),
                1 / (1 + np.exp(-z[3 * H :])),
            )
            c = f * c + i * g
            h = o * np.tanh(c)
            out.append(h)
        return np.array(out), h

    for k in range(layers):
        f = (sd[f"weight_ih_l{k}"], sd[f"weight_hh_l{k}"], sd[f"bias_ih_l{k}"] + sd[f"bias_hh_l{k}"])
        b = (
            sd[f"weight_ih_l{k}_reverse"],
            sd[f"weight_hh_l{k}_reverse"],
            sd[f"bias_ih_l{k}_reverse"] + sd[f"bias_hh_l{k}_reverse"],
        )
        out_f, h_f = run(*f, x)
        out_b, h_b = run(*b, x[::-1])
        x = np.concatenate([out_f, out_b[::-1]], axis=1)
    return np.concatenate([h_f, h_b])


def test_model_from_torch_layout_weights():
    """Random weights in torch's layout (no torch needed): embedding, 2-layer BiLSTM, two Linear layers."""
    rng = np.random.default_rng(0)
    V, E, H = 12, 5, 4
    vocab = ["the", "good", "bad", "film", "plot", "great", "dull", "a", "was", "and"]  # ids 2..11
    table = rng.normal(0, 0.5, (V, E))
    sd = {}
    for k in range(2):
        for s in ("", "_reverse"):
            sd[f"weight_ih_l{k}{s}"] = rng.normal(0, 0.5, (4 * H, E if k == 0 else 2 * H))
            sd[f"weight_hh_l{k}{s}"] = rng.normal(0, 0.5, (4 * H, H))
            sd[f"bias_ih_l{k}{s}"] = rng.normal(0, 0.1, 4 * H)
            sd[f"bias_hh_l{k}{s}"] = rng.normal(0, 0.1, 4 * H)
    W1, b1 = rng.normal(0, 0.5, (3, 2 * H)), rng.normal(0, 0.1, 3)  # nn.Linear: (out, in)
    W2, b2 = rng.normal(0, 0.5, (1, 3)), rng.normal(0, 0.1, 1)
    model = model_from_weights(
        table,
        from_torch_state_dict(sd),
        [(W1, b1), (W2, b2)],
        vocab,
        dense_layout="torch",
        sequence_length=8,
        class_names=["neg", "pos"],
    )
    text = "The plot was dull, the film was GREAT and good"
    e = explain(model, text)
    assert e["n_used"] == 8 and e["truncated"] and len(e["layers"]) == 2
    ids = [vocab.index(t) + 2 for t in e["tokens"][:8]]
    h = torch_lstm_reference(sd, table[ids], 2, H)
    expected = 1 / (1 + np.exp(-(W2 @ np.maximum(W1 @ h + b1, 0) + b2)))[0]
    assert e["probabilities"][1] == pytest.approx(expected, abs=1e-5)
    assert model.predict([text])[0, 0] == pytest.approx(expected, abs=1e-5)
    np.testing.assert_allclose(e["trajectory"][-1], expected, atol=1e-4)


@pytest.mark.parametrize("fixture", ["bilstm", "pooled"])
def test_an_ensemble_is_explained_by_its_mean_probability(fixture, request):
    """Probability, trajectory and attribution are the ensemble's, as its predict gives them;
    the gates are the first member's, and the page says so."""
    model = request.getfixturevalue(fixture)
    ensemble = Sequential(
        model.layers,
        class_names=model.class_names,
        vectorizer=model.vectorizer,
        params=model.params,
        ensemble=[jax.tree.map(lambda w: 4 * w, model.init_params(jax.random.key(s))) for s in (7, 8)],
    )
    text = "the acting was awful but the movie was great and lovely"
    e, alone = explain(ensemble, text), explain(model, text)
    p = ensemble.predict([text])[0]
    np.testing.assert_allclose(e["probabilities"], [1 - p[0], p[0]] if p.shape[-1] == 1 else p, atol=1e-5)
    assert abs(e["target_probability"] - alone["target_probability"]) > 1e-3  # not the first member's
    k = model.class_names.index(e["target_class"])
    prefixes = [" ".join(e["tokens"][: t + 1]) for t in range(e["n_used"])]
    np.testing.assert_allclose(e["trajectory"], ensemble.predict(prefixes)[:, min(k, p.shape[-1] - 1)], atol=2e-4)
    occluded = " ".join("qqqq" if w == "great" else w for w in e["tokens"])
    q = np.float64(ensemble.predict([occluded])[0, min(k, p.shape[-1] - 1)])
    t = np.float64(e["target_probability"])
    if p.shape[-1] == 1 and k == 0:
        t, q = 1 - t, 1 - q
    expected = np.log(t / (1 - t)) - np.log(q / (1 - q))
    assert e["attribution"][e["tokens"].index("great")] == pytest.approx(expected, abs=2e-3)
    np.testing.assert_array_equal(e["layers"][0]["directions"][0]["f"], alone["layers"][0]["directions"][0]["f"])
    assert any("ensemble of 3 members" in note for note in e["notes"])
