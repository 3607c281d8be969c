"""The language model that pretrains a classifier's Embedding and first LSTM layer: network and losses.

Shape legend: B batch, T time (the BPTT window), E embedding, H hidden units, V input vocabulary
(max_tokens), K output vocabulary (the K most frequent ids), S sampled negatives, D directions,
N positions (B*T).

The network is the classifier's own bottom: the Embedding (V, E) and the first LSTM layer, run by
`lstmkit.core.lstm.run_directions` (the kernel with the hand-written backward). Each direction is a
next-token language model with an output layer of its own:

    forward:   h_f[t] has read x[0..t]          and predicts x[t+1]
    backward:  h_b[t] has read x[t..end], in reverse, and predicts x[t-1]
    p(w | h)  = softmax(h W_d + b_d) over the K output ids, where ids >= K count as [UNK] (id 1)
                and the padding id 0 is never a class.

A bidirectional classifier gets both directions pretrained; a unidirectional one the forward LM.

Why a restricted output vocabulary with a sampled softmax. The output layer is the cost driver on
a CPU: with N = 64*400 positions, H = 64 and all V = 20,000 words, the logits alone are N*V =
512M floats (2 GB) and 3 * 2*N*H*V = 200 GFLOP per direction per batch, about ten times the
LSTM's own work. So:
  1. the output vocabulary is the K (default 8,000) most frequent ids, which the vectorizer's
     count order makes ids 0..K-1; the rest of the vocabulary is predicted as [UNK]. On IMDB the
     rarer 12,000 words are a few percent of the tokens, and the input side keeps all V words;
  2. training uses a sampled softmax (Jean et al., 2015): per batch and direction, S (default
     512) negatives are drawn with replacement from q ~ count^0.75 over the K ids, shared by all
     positions; each logit is corrected by -log(S q(w)), and a negative equal to a position's
     target is removed ("accidental hit"). This is the full softmax's gradient in expectation as
     S grows, at S/K of the cost: (N, S) logits instead of (N, K);
  3. the held-out perplexity is exact: a full softmax over the K ids, computed one row at a time
     (T, K) so it never holds (N, K). `negatives=0` (or S >= K) trains with the exact softmax too.
Both losses are log-sum-exp of logits minus the target's logit: stable, no probabilities formed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lstmkit.core.init import glorot_uniform
from lstmkit.core.lstm import run_directions
from lstmkit.data.text import OOV_ID, PAD_ID
from lstmkit.nn import layers as L
from lstmkit.tasks.presets import LMConfig

SAMPLING_POWER = 0.75  # q ~ count^0.75: flatter than unigram, so rare words get some negatives


def init_lm(key, config: LMConfig, n_outputs: int, unigram=None):
    """Fresh LM parameters: the classifier's Embedding and LSTM initialisers, plus one head per direction.

    unigram: (K,) counts of the output ids; the head's bias starts at their log frequency, so
    the untrained LM already predicts the unigram distribution instead of a uniform one.
    """
    k_emb, k_lstm, k_head = jax.random.split(key, 3)
    embedding, _ = L.Embedding(config.max_tokens, config.embedding_dim).init(k_emb, (None,))  # {"table": (V, E)}
    lstm = L.LSTM(config.lstm_units, return_sequences=True, init=config.init)
    bias = (
        jnp.zeros(n_outputs)
        if unigram is None
        else jnp.log((jnp.asarray(unigram, jnp.float32) + 1.0) / (np.sum(unigram) + n_outputs))
    )
    params = {"embedding": embedding, "lstm": {}, "head": {}}
    for d, k_l, k_h in zip(config.directions, jax.random.split(k_lstm, 2), jax.random.split(k_head, 2)):
        params["lstm"][d], _ = lstm.init(k_l, (None, config.embedding_dim))
        params["head"][d] = {
            "W": glorot_uniform(k_h, (config.lstm_units, n_outputs)),
            "b": jnp.array(bias, copy=True),
        }  # one buffer each (donated)
    return params


def lm_hidden(params, ids, mask, directions):
    """Every direction's hidden states, D arrays (B, T, H): one scan of lstmkit's kernel."""
    hs, _ = run_directions(
        [params["lstm"][d] for d in directions],
        ids,
        mask,
        reverse=[d == "backward" for d in directions],
        embedding=params["embedding"]["table"],
    )
    return hs


def lm_targets(ids, mask, direction, n_outputs):
    """What each position predicts: target ids (B, T) in [1, K) and valid (B, T) bool.

    forward: x[t+1]; backward: x[t-1]. Ids >= K become [UNK]; positions with no real neighbour
    (the last token forward, the first backward, padding) are invalid, with target [UNK].
    """
    pad_col = jnp.zeros_like(ids[:, :1])
    no_col = jnp.zeros_like(mask[:, :1])
    if direction == "forward":
        target, valid = jnp.concatenate([ids[:, 1:], pad_col], 1), mask & jnp.concatenate([mask[:, 1:], no_col], 1)
    else:
        target, valid = jnp.concatenate([pad_col, ids[:, :-1]], 1), mask & jnp.concatenate([no_col, mask[:, :-1]], 1)
    target = jnp.where(valid & (target < n_outputs), target, OOV_ID)
    return target, valid


def full_softmax_nll(h, W, b, target):
    """-log p(target | h) with the exact softmax over the K output ids: (B, T).

    h (B, T, H), W (H, K), b (K,), target (B, T). One row (T, K) of logits at a time, so memory
    stays O(T K), never O(B T K). The padding column 0 is excluded from the softmax.
    """
    not_pad = jnp.arange(W.shape[1]) != PAD_ID

    def row(args):
        h_row, t_row = args  # (T, H), (T,)
        logits = jnp.where(not_pad, h_row @ W + b, -jnp.inf)  # (T, K)
        picked = jnp.take_along_axis(logits, t_row[:, None], axis=1)[:, 0]
        return jax.nn.logsumexp(logits, axis=1) - picked

    return jax.lax.map(row, (h, target))


def sampled_softmax_nll(h, W, b, target, negatives, log_expected):
    """-log p(target | h) estimated with a sampled softmax: (N,).

    h (N, H), W (H, K), b (K,), target (N,); negatives (S,) ids drawn from q; log_expected (K,)
    = log(S q(w)), the correction that makes the sampled logits estimate the full softmax.
    A negative equal to a position's target is masked out (it would count the target twice).
    """
    W_true = jnp.take(W, target, axis=1)  # (H, N)
    true_logit = jnp.sum(h * W_true.T, axis=1) + b[target] - log_expected[target]  # (N,)
    neg_logits = h @ jnp.take(W, negatives, axis=1) + (b[negatives] - log_expected[negatives])  # (N, S)
    neg_logits = jnp.where(negatives[None, :] == target[:, None], -jnp.inf, neg_logits)
    all_logits = jnp.concatenate([true_logit[:, None], neg_logits], axis=1)  # (N, 1 + S)
    return jax.nn.logsumexp(all_logits, axis=1) - true_logit


def lm_nll(params, ids, mask, key, *, directions, n_outputs, negatives=0, log_q=None):
    """Summed negative log-likelihood per direction (D,) and the number of targets per direction (D,).

    negatives: S > 0 samples a softmax (training); 0 computes the exact one (evaluation).
    log_q: (K,) log sampling probabilities (needed when S > 0).
    """
    hs = lm_hidden(params, ids, mask, directions)
    sums, counts = [], []
    for n, (d, h) in enumerate(zip(directions, hs)):
        target, valid = lm_targets(ids, mask, d, n_outputs)
        W, b = params["head"][d]["W"], params["head"][d]["b"]
        if negatives:
            neg = jax.random.choice(jax.random.fold_in(key, n), n_outputs, (negatives,), p=jnp.exp(log_q))
            nll = sampled_softmax_nll(
                h.reshape(-1, h.shape[-1]), W, b, target.reshape(-1), neg, jnp.log(negatives) + log_q
            )
            nll = nll.reshape(target.shape)
        else:
            nll = full_softmax_nll(h, W, b, target)
        sums.append(jnp.sum(jnp.where(valid, nll, 0.0)))
        counts.append(jnp.sum(valid))
    return jnp.stack(sums), jnp.stack(counts)
