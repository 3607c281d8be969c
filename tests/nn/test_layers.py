"""The LSTM and Bidirectional layers against Keras's conventions: go_backwards order, return_state,
initial_state, and the errors Keras raises. References: a hand loop over the cell, and torch.nn.LSTM
where torch is importable.

Shape legend: B batch, T time, E input features, H hidden units, V vocabulary.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import hand_loop, right_padded_mask
from lstmkit import LstmkitError, LSTMState
from lstmkit.io.interop import from_torch_state_dict
from lstmkit.nn.layers import (
    LSTM,
    Bidirectional,
    Dense,
    Embedding,
    GlobalAveragePool,
    GlobalMaxPool,
    layer_from_config,
    layer_to_config,
)
from lstmkit.nn.model import Sequential

B, T, E, H = 4, 7, 3, 5
LENGTHS = [7, 3, 1, 5]
TOL = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture
def data():
    k = jax.random.split(jax.random.key(0), 5)
    x = jax.random.normal(k[0], (B, T, E))
    h0 = [jax.random.normal(k[1], (B, H)), jax.random.normal(k[2], (B, H))]
    c0 = [jax.random.normal(k[3], (B, H)), jax.random.normal(k[4], (B, H))]
    return x, right_padded_mask(LENGTHS, T), h0, c0


def test_go_backwards_returns_the_sequence_reversed_in_time(data):
    """Keras: "process the input sequence backwards and return the reversed sequence", over the whole
    padded axis; the mask is flipped with it, so pooling still reads the real steps."""
    x, mask, _, _ = data
    layer = LSTM(H, return_sequences=True, go_backwards=True)
    params, shape = layer.init(jax.random.key(1), (T, E))
    out, out_mask = layer.apply(params, x, mask)
    hs, h, _ = hand_loop(params, x, mask, reverse=True)  # hs in input order
    assert shape == (T, H)
    np.testing.assert_allclose(out, np.flip(hs, 1), **TOL)
    np.testing.assert_array_equal(out_mask, np.flip(mask, 1))
    np.testing.assert_allclose(out[0, -1], h[0], **TOL)  # a full row: the last output is the final state
    for pool in (GlobalMaxPool(), GlobalAveragePool()):
        np.testing.assert_allclose(pool.apply({}, out, out_mask)[0], pool.apply({}, hs, mask)[0], **TOL)
    # The next LSTM reads the sequence in the order it was returned: last token first.
    nxt = LSTM(H)
    p2, _ = nxt.init(jax.random.key(2), (T, H))
    _, h2, _ = hand_loop(p2, np.flip(hs, 1), np.flip(mask, 1))
    np.testing.assert_allclose(nxt.apply(p2, out, out_mask)[0], h2, **TOL)
    # Without return_sequences nothing changes: the final h, no mask.
    last, last_mask = LSTM(H, go_backwards=True).apply(params, x, mask)
    np.testing.assert_allclose(last, h, **TOL)
    assert last_mask is None


def test_bidirectional_keeps_the_backward_half_in_input_order(data):
    x, mask, _, _ = data
    bi = Bidirectional(LSTM(H, return_sequences=True))
    params, _ = bi.init(jax.random.key(3), (T, E))
    out, out_mask = bi.apply(params, x, mask)
    hs_b, _, _ = hand_loop(params["backward"], x, mask, reverse=True)
    np.testing.assert_allclose(out[..., H:], hs_b, **TOL)
    np.testing.assert_array_equal(out_mask, mask)


def test_bidirectional_refuses_go_backwards():
    with pytest.raises(LstmkitError, match=r"go_backwards=True.*drop go_backwards"):
        Bidirectional(LSTM(H, go_backwards=True))
    # A model saved while the flag was ignored loads as it ran: go_backwards off.
    saved = {"type": "Bidirectional", "layer": {"units": H, "go_backwards": True}, "merge_mode": "sum"}
    assert layer_from_config(saved).layer.go_backwards is False


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_lstm_initial_state_and_return_state_equal_the_hand_loop(data, go_backwards, return_sequences):
    x, mask, h0, c0 = data
    layer = LSTM(H, return_sequences=return_sequences, go_backwards=go_backwards, return_state=True)
    params, _ = layer.init(jax.random.key(4), (T, E))
    (out, h, c), out_mask = layer.apply(params, x, mask, initial_state=[h0[0], c0[0]])
    hs_ref, h_ref, c_ref = hand_loop(params, x, mask, h0[0], c0[0], reverse=go_backwards)
    np.testing.assert_allclose(h, h_ref, **TOL)
    np.testing.assert_allclose(c, c_ref, **TOL)
    if return_sequences:
        np.testing.assert_allclose(out, np.flip(hs_ref, 1) if go_backwards else hs_ref, **TOL)
        assert out_mask.shape == (B, T)
    else:
        np.testing.assert_allclose(out, h_ref, **TOL)
        assert out_mask is None
    # An LSTMState is taken as well; without return_state the output comes alone.
    plain = LSTM(H, return_sequences=return_sequences, go_backwards=go_backwards)
    alone, _ = plain.apply(params, x, mask, initial_state=LSTMState(h0[0], c0[0]))
    np.testing.assert_allclose(alone, out, **TOL)


def test_bidirectional_initial_state_and_return_state_equal_the_hand_loop(data):
    x, mask, h0, c0 = data
    bi = Bidirectional(LSTM(H, return_sequences=True, return_state=True), merge_mode="concat")
    params, _ = bi.init(jax.random.key(5), (T, E))
    (out, h_f, c_f, h_b, c_b), out_mask = bi.apply(params, x, mask, initial_state=[h0[0], c0[0], h0[1], c0[1]])
    hs_f, hf_ref, cf_ref = hand_loop(params["forward"], x, mask, h0[0], c0[0])
    hs_b, hb_ref, cb_ref = hand_loop(params["backward"], x, mask, h0[1], c0[1], reverse=True)
    np.testing.assert_allclose(out, np.concatenate([hs_f, hs_b], -1), **TOL)
    for got, want in ((h_f, hf_ref), (c_f, cf_ref), (h_b, hb_ref), (c_b, cb_ref)):
        np.testing.assert_allclose(got, want, **TOL)
    np.testing.assert_array_equal(out_mask, mask)
    pairs = (LSTMState(h0[0], c0[0]), LSTMState(h0[1], c0[1]))
    np.testing.assert_allclose(bi.apply(params, x, mask, initial_state=pairs)[0][0], out, **TOL)


def test_initial_state_on_the_fused_embedding_path(data):
    _, mask, h0, c0 = data
    V = 11
    emb, layer = Embedding(V, E), LSTM(H, return_state=True, go_backwards=True, return_sequences=True)
    table = emb.init(jax.random.key(6), (T,))[0]["table"]
    params, _ = layer.init(jax.random.key(7), (T, E))
    ids = jnp.asarray(np.random.default_rng(0).integers(1, V, (B, T)), jnp.int32)
    fused, _ = layer.apply(params, ids, mask, embedding=table, initial_state=[h0[0], c0[0]])
    plain, _ = layer.apply(params, table[ids], mask, initial_state=[h0[0], c0[0]])
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_initial_state_errors(data):
    x, mask, h0, c0 = data
    layer, bi = LSTM(H), Bidirectional(LSTM(H))
    params, _ = layer.init(jax.random.key(8), (T, E))
    bi_params, _ = bi.init(jax.random.key(9), (T, E))
    with pytest.raises(LstmkitError, match=r"initial_state must be \[h, c\]"):
        layer.apply(params, x, mask, initial_state=h0[0])
    with pytest.raises(LstmkitError, match=r"\[h_fwd, c_fwd, h_bwd, c_bwd\]"):
        bi.apply(bi_params, x, mask, initial_state=[h0[0], c0[0]])
    with pytest.raises(LstmkitError, match="initial h must be"):
        layer.apply(params, x, mask, initial_state=[h0[0][:, :2], c0[0]])


def test_sequential_refuses_a_layer_after_one_that_returns_states():
    for rec in (LSTM(4, return_state=True), Bidirectional(LSTM(4, return_state=True))):
        with pytest.raises(LstmkitError, match="return_state=True gives .* takes one array"):
            Sequential([Embedding(10, 3), rec, Dense(1, "sigmoid")])
    # Last in a Sequential it is allowed (apply gives the list), and its config keeps the flag.
    Sequential([Embedding(10, 3), LSTM(4, return_state=True)])
    assert layer_from_config(layer_to_config(LSTM(4, return_state=True))).return_state is True
    assert layer_from_config({"type": "LSTM", "units": 4}).return_state is False  # configs saved before it


@pytest.mark.parametrize("bidirectional", [False, True])
def test_return_state_and_initial_state_equal_torch(bidirectional):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    D = 2 if bidirectional else 1
    lstm = torch.nn.LSTM(E, H, batch_first=True, bidirectional=bidirectional)
    x, h0, c0 = torch.randn(B, T, E), torch.randn(D, B, H), torch.randn(D, B, H)
    with torch.no_grad():
        out_t, (h_t, c_t) = lstm(x, (h0, c0))
    [params] = from_torch_state_dict(lstm.state_dict())
    cell = LSTM(H, return_sequences=True, return_state=True)
    layer = Bidirectional(cell) if bidirectional else cell
    init = [a[d].numpy() for d in range(D) for a in (h0, c0)]  # [h, c] per direction, Keras's order
    (out, *states), _ = layer.apply(params, x.numpy(), None, initial_state=init)
    np.testing.assert_allclose(out, out_t.numpy(), atol=1e-5)
    want = [a[d].numpy() for d in range(D) for a in (h_t, c_t)]
    for got, ref in zip(states, want, strict=True):
        np.testing.assert_allclose(got, ref, atol=1e-5)


def test_bigram_embedding_adds_the_vector_of_each_word_pair():
    """x_t = E[w_t] + E_bigram[bucket(w_{t-1}, w_t)], the bucket a 32-bit multiplicative hash (checked
    here in Python integers); the first token pairs with padding; the word table is the same with
    or without bigrams (same key)."""
    from lstmkit.nn.layers import bigram_ids

    buckets = 97
    layer = Embedding(40, 6, mask_zero=True, bigram_buckets=buckets)
    params, shape = layer.init(jax.random.key(3), (None,))
    plain, _ = Embedding(40, 6, mask_zero=True).init(jax.random.key(3), (None,))
    np.testing.assert_array_equal(params["table"], plain["table"])
    ids = np.array([[7, 39, 7, 39, 0], [39, 39, 2, 0, 0]], np.int32)
    x, mask = layer.apply(params, jnp.asarray(ids), None)
    assert x.shape == (2, 5, 6) and mask.tolist() == (ids != 0).tolist()
    for b in range(2):
        for t in range(5):
            prev = int(ids[b, t - 1]) if t else 0
            bucket = ((prev * 2654435761 + int(ids[b, t]) * 40503) % 2**32) % buckets
            expected = params["table"][ids[b, t]] + params["bigram_table"][bucket]
            np.testing.assert_allclose(x[b, t], expected, rtol=1e-6)
    assert bigram_ids(jnp.asarray(ids), buckets)[0, 1] == bigram_ids(jnp.asarray(ids), buckets)[0, 3]  # same pair
    with pytest.raises(LstmkitError, match="bigram_buckets"):
        Embedding(40, 6, bigram_buckets=-1)


def test_bigram_model_skips_the_projected_table_path_and_round_trips(tmp_path):
    """A bigram Embedding before an LSTM runs the plain layers (the projected-table path reads word
    vectors only), and a saved model predicts the same after loading."""
    from lstmkit.data.text import TextVectorizer
    from lstmkit.nn.model import Sequential, load_model

    texts = ["a good film", "a bad film", "not good at all", "good good good"]
    model = Sequential(
        [
            TextVectorizer(max_tokens=20, output_sequence_length=6),
            Embedding(20, 4, mask_zero=True, bigram_buckets=31),
            Bidirectional(LSTM(3)),
            Dense(1, "sigmoid"),
        ]
    )
    model.vectorizer.adapt(texts)
    params = model.build(seed=1)
    ids = model.vectorizer(texts)
    x, mask = model.layers[0].apply(params[0], ids, None)
    h, _ = model.layers[1].apply(params[1], x, mask)
    np.testing.assert_allclose(model.apply(params, ids), model.layers[2].apply(params[2], h, None)[0], atol=1e-6)
    model.compile()
    model.save(tmp_path / "m")
    np.testing.assert_allclose(load_model(tmp_path / "m").predict(texts), model.predict(texts), atol=1e-6)


def test_bigram_dropout_drops_whole_pair_vectors_in_training_only():
    layer = Embedding(40, 6, mask_zero=True, bigram_buckets=97, bigram_dropout=0.5)
    params, _ = layer.init(jax.random.key(3), (None,))
    ids = jnp.asarray(np.random.default_rng(0).integers(1, 40, (4, 50)).astype(np.int32))
    words_only = jnp.take(params["table"], ids, axis=0)
    full, _ = layer.apply(params, ids, None)
    trained, _ = layer.apply(params, ids, None, key=jax.random.key(1))
    dropped = np.all(np.isclose(trained, words_only, atol=1e-7), -1)  # (4, 50): the pair's vector is gone
    kept = np.all(np.isclose(trained, full, atol=1e-7), -1)
    assert np.all(dropped ^ kept)  # each position whole: its pair dropped or kept, never scaled
    assert 0.35 < dropped.mean() < 0.65
    np.testing.assert_array_equal(layer.apply(params, ids, None, key=None)[0], full)
    with pytest.raises(LstmkitError, match="bigram_dropout"):
        Embedding(40, 6, bigram_buckets=97, bigram_dropout=1.0)
