"""Language-model pretraining of a classifier's Embedding and first LSTM layer, on unlabeled text.

Shape legend: B batch, T time (the BPTT window), E embedding, H hidden units, V input vocabulary
(max_tokens), K output vocabulary (the K most frequent ids), S sampled negatives, D directions,
N positions (B*T).

The network is the classifier's own bottom: the Embedding (V, E) and the first LSTM layer, run by
`lstmkit.lstm.run_directions` (the kernel with the hand-written backward). Each direction is a
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

Long texts are cut into consecutive windows of `sequence_length` tokens (truncated BPTT: each
window starts from a zero state), so every token of the corpus is read, not only the first T.

The pretrained directory (written atomically, as a model directory is):
    config.json          kind "lstmkit-pretrained", settings, corpus counts, file checksums
    vocabulary.txt, vectorizer.json    the TextVectorizer (adapted on the 98% training texts)
    weights.safetensors  embedding.table (V, E); lstm.{forward,backward}.{W_x,W_h,b};
                         head.{forward,backward}.{W (H, K), b (K,)}
    history.json         per epoch: sampled training loss, held-out loss and perplexity (2%)

    >>> texts = ["the cat sat on the mat"] * 40
    >>> history = pretrain(texts, "/tmp/lm", max_tokens=20, embedding_dim=8, lstm_units=8,
    ...                    epochs=2, batch_size=8, verbose=False)            # doctest: +SKIP
    >>> history["val_perplexity"][-1] < 2                                     # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstmkit import checkpoint
from lstmkit.atomic import write_json
from lstmkit.errors import LstmkitError
from lstmkit.presets import DEFAULT as PRESET

KIND = checkpoint.PRETRAINED_KIND
HELD_OUT = 0.02  # share of the texts kept for the LM's held-out loss and perplexity
SAMPLING_POWER = 0.75  # q ~ count^0.75: flatter than unigram, so rare words get some negatives
PAD, UNK = 0, 1


@dataclass(frozen=True)
class LMConfig:
    """Settings of a pretraining run; the sizes must match the classifier that adopts it.

    The defaults are the `default` preset's sizes (see `lstmkit.presets.DEFAULT`).
    """

    max_tokens: int = PRESET["max_tokens"]
    embedding_dim: int = PRESET["embedding_dim"]
    lstm_units: int = PRESET["lstm_units"]
    bidirectional: bool = PRESET["bidirectional"]
    sequence_length: int = PRESET["sequence_length"]
    standardize: str = PRESET["standardize"]
    strip_html: bool = PRESET["strip_html"]
    init: str = PRESET["init"]
    output_vocab: int = 8000
    negatives: int = 512
    batch_size: int = 64
    learning_rate: float = 2e-3
    clipnorm: float = 1.0
    epochs: int = 1
    max_steps: int = 0  # 0: no limit; else stop after this many steps in all (a short run)
    seed: int = 0

    @property
    def directions(self) -> tuple[str, ...]:
        return ("forward", "backward") if self.bidirectional else ("forward",)

    def check(self) -> LMConfig:
        for key in ("embedding_dim", "lstm_units", "sequence_length", "batch_size", "epochs"):
            if int(getattr(self, key)) < 1:
                raise LstmkitError(f"--{key.replace('_', '-')} must be at least 1, got {getattr(self, key)}")
        if self.max_tokens < 3:
            raise LstmkitError(f"--max-tokens must be at least 3 (padding, [UNK] and one word), got {self.max_tokens}")
        if self.output_vocab < 3:
            raise LstmkitError(f"--output-vocab must be at least 3 (padding, [UNK] and one word), got {self.output_vocab}")
        if self.negatives < 0 or self.max_steps < 0:
            raise LstmkitError(f"--negatives and --max-steps must be >= 0, got {self.negatives} and {self.max_steps}")
        if not self.learning_rate > 0:
            raise LstmkitError(f"--learning-rate must be positive, got {self.learning_rate}")
        return self


# -- the network -----------------------------------------------------------------------------------


def init_lm(key, config: LMConfig, n_outputs: int, unigram=None):
    """Fresh LM parameters: the classifier's Embedding and LSTM initialisers, plus one head per direction.

    unigram: (K,) counts of the output ids; the head's bias starts at their log frequency, so
    the untrained LM already predicts the unigram distribution instead of a uniform one.
    """
    from lstmkit import layers as L
    from lstmkit.init import glorot_uniform

    k_emb, k_lstm, k_head = jax.random.split(key, 3)
    embedding, _ = L.Embedding(config.max_tokens, config.embedding_dim).init(k_emb, (None,))  # {"table": (V, E)}
    lstm = L.LSTM(config.lstm_units, return_sequences=True, init=config.init)
    bias = jnp.zeros(n_outputs) if unigram is None else jnp.log((jnp.asarray(unigram, jnp.float32) + 1.0) / (np.sum(unigram) + n_outputs))
    params = {"embedding": embedding, "lstm": {}, "head": {}}
    for d, k_l, k_h in zip(config.directions, jax.random.split(k_lstm, 2), jax.random.split(k_head, 2)):
        params["lstm"][d], _ = lstm.init(k_l, (None, config.embedding_dim))
        params["head"][d] = {"W": glorot_uniform(k_h, (config.lstm_units, n_outputs)), "b": jnp.array(bias, copy=True)}  # one buffer each (donated)
    return params


def lm_hidden(params, ids, mask, directions):
    """Every direction's hidden states, D arrays (B, T, H): one scan of lstmkit's kernel."""
    from lstmkit.lstm import run_directions

    hs, _ = run_directions(
        [params["lstm"][d] for d in directions], ids, mask, reverse=[d == "backward" for d in directions],
        embedding=params["embedding"]["table"],
    )  # fmt: skip
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
    target = jnp.where(valid & (target < n_outputs), target, UNK)
    return target, valid


def full_softmax_nll(h, W, b, target):
    """-log p(target | h) with the exact softmax over the K output ids: (B, T).

    h (B, T, H), W (H, K), b (K,), target (B, T). One row (T, K) of logits at a time, so memory
    stays O(T K), never O(B T K). The padding column 0 is excluded from the softmax.
    """
    not_pad = jnp.arange(W.shape[1]) != PAD

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
            nll = sampled_softmax_nll(h.reshape(-1, h.shape[-1]), W, b, target.reshape(-1), neg, jnp.log(negatives) + log_q)
            nll = nll.reshape(target.shape)
        else:
            nll = full_softmax_nll(h, W, b, target)
        sums.append(jnp.sum(jnp.where(valid, nll, 0.0)))
        counts.append(jnp.sum(valid))
    return jnp.stack(sums), jnp.stack(counts)


# -- data ------------------------------------------------------------------------------------------


def read_unlabeled(source, *, text_column=None, seed=0) -> list[str]:
    """Texts of one unlabeled source, labels ignored.

    IMDB ('imdb', an aclImdb folder or archive): its 50,000 'unsup' reviews. A .txt file: one text
    per non-empty line. A .csv/.tsv/.jsonl file: its text column (--text-column or autodetected).
    A folder: every .txt file under it, one text per file.
    """
    from lstmkit import datasets

    imdb = datasets.imdb_source(source)
    if imdb is not None:
        return datasets.load_imdb(imdb, split="unsup", seed=seed).texts
    path = Path(source).expanduser()
    if not path.exists():
        raise LstmkitError(f"{path} does not exist; pass 'imdb', an aclImdb folder or .tar.gz, a .txt file (one text per line), a .csv/.tsv/.jsonl file, or a folder of .txt files")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file() and not p.name.startswith("."))
        texts = [datasets.decode_text(datasets._read_bytes(p))[0] for p in files]
    elif path.suffix.lower() == ".txt":
        texts = datasets.decode_text(datasets._read_bytes(path))[0].splitlines()
    elif path.suffix.lower() in (".csv", ".tsv", ".tab", ".jsonl", ".ndjson", ".json"):
        text = datasets.decode_text(datasets._read_bytes(path))[0].removeprefix("\ufeff")
        if path.suffix.lower() in (".csv", ".tsv", ".tab"):
            columns, rows = datasets._read_delimited(text, "," if path.suffix.lower() == ".csv" else "\t", path)
        else:
            columns, rows = datasets._read_json_lines(text, path)
        column = datasets._pick_column(columns, text_column, datasets.TEXT_COLUMNS, "text", path)
        texts = [r.get(column) if isinstance(r.get(column), str) else "" for r in rows]
    else:
        raise LstmkitError(f"{path.name}: unknown file type '{path.suffix}'; use .txt (one text per line), .csv, .tsv, .jsonl, or a folder of .txt files")
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise LstmkitError(f"{path} holds no text; pass a source with at least one non-empty text")
    return texts


def pretraining_texts(data=None, unlabeled=(), *, text_column=None, seed=0, verbose=True) -> list[str]:
    """All texts to pretrain on: the training part of labelled `data`, and every `unlabeled` source.

    data is read as `lstmkit train --data` reads it, and only the part that run trains on is used
    (IMDB's train split; the 80% of a user's file that `train --seed` keeps), so its test texts
    never reach the LM.
    """
    from lstmkit import datasets
    from lstmkit.run import load_splits

    if data is None and not unlabeled:
        raise LstmkitError("no text to pretrain on: pass --data (labelled data, its training part) and/or --unlabeled SOURCE")
    texts = []
    if data is not None:
        imdb = datasets.imdb_source(data)
        train = datasets.load_imdb(imdb, split="train", seed=seed) if imdb is not None else load_splits(data, text_column=text_column, seed=seed)[0]
        texts += list(train.texts)
        if verbose:
            print(f"{data}: {len(train.texts):,} training texts", flush=True)
    for source in unlabeled:
        more = read_unlabeled(source, text_column=text_column, seed=seed)
        texts += more
        if verbose:
            print(f"{source}: {len(more):,} unlabeled texts", flush=True)
    return texts


def windows(sequences, length):
    """Cut each id sequence into consecutive windows of at most `length` ids; drop windows under 2.

    >>> [w.tolist() for w in windows([np.arange(1, 6), np.array([7])], 2)]
    [[1, 2], [3, 4]]
    """
    out = []
    for s in sequences:
        out += [s[i : i + length] for i in range(0, len(s), length) if len(s) - i >= 2]
    return out


# -- training --------------------------------------------------------------------------------------


def _sampling_log_q(counts):
    """log q (K,) over the output ids, q ~ count^0.75, never the padding id."""
    weight = np.asarray(counts, np.float64) ** SAMPLING_POWER
    weight[PAD] = 0.0
    weight = np.maximum(weight, 0.0)
    weight[1:] += 1e-6 * weight.sum() / max(len(weight) - 1, 1)  # every word can be drawn
    with np.errstate(divide="ignore"):
        return jnp.asarray(np.log(weight / weight.sum()), jnp.float32)


def _make_steps(config: LMConfig, optimizer, n_outputs, log_q):
    directions, sampled = config.directions, config.negatives if config.negatives < n_outputs - 1 else 0

    @partial(jax.jit, donate_argnums=(0, 1))
    def train_step(params, opt_state, ids, mask, key):
        def loss(p):
            sums, counts = lm_nll(p, ids, mask, key, directions=directions, n_outputs=n_outputs, negatives=sampled, log_q=log_q)
            return sums.sum() / jnp.maximum(counts.sum(), 1), (sums, counts)

        (_, (sums, counts)), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
        return params, opt_state, sums.sum(), counts.sum()

    @jax.jit
    def eval_step(params, ids, mask):
        return lm_nll(params, ids, mask, None, directions=directions, n_outputs=n_outputs)

    return train_step, eval_step


def _batches(sequences, config, *, seed, shuffle):
    from lstmkit.batching import iterate_batches, prefetch
    from lstmkit.train import _pad_multiple

    it = iterate_batches(
        sequences, None, config.batch_size, seed=seed, shuffle=shuffle, bucket=True,
        pad_multiple=_pad_multiple(config.sequence_length), max_length=config.sequence_length,
    )  # fmt: skip
    return prefetch(it, 2)


def evaluate_lm(eval_step, params, sequences, config):
    """Exact held-out loss (mean nll per target token) and perplexity, per direction and overall."""
    pending = [eval_step(params, b.ids, b.mask & (b.weight[:, None] > 0)) for b in _batches(sequences, config, seed=0, shuffle=False)]
    sums = np.sum([np.asarray(s, np.float64) for s, _ in pending], axis=0)
    counts = np.sum([np.asarray(c, np.float64) for _, c in pending], axis=0)
    out = {"val_loss": float(sums.sum() / max(counts.sum(), 1))}
    out["val_perplexity"] = math.exp(out["val_loss"])
    for d, s, c in zip(config.directions, sums, counts):
        out[f"val_perplexity_{d}"] = math.exp(s / max(c, 1))
    return out


def pretrain(texts, out, *, verbose=True, progress=None, sources=None, overwrite=True, **settings):
    """Pretrain an Embedding + (bi)LSTM language model on `texts` and write the directory `out`.

    settings: the fields of `LMConfig` (max_tokens, embedding_dim, lstm_units, bidirectional,
    sequence_length, output_vocab, negatives, batch_size, learning_rate, epochs, max_steps, seed...).
    sources: descriptions of where the texts came from, recorded in config.json.
    verbose: print one line per epoch; progress: a progress bar per epoch (default: verbose).
    overwrite: whether a pretrained directory at `out` may be replaced (anything else never is).

    Returns the history: per epoch loss (sampled, training), val_loss and val_perplexity (exact,
    held-out 2%), per-direction perplexities, tokens_per_second and epoch_time.
    """
    from tqdm.auto import tqdm

    from lstmkit.model import make_optimizer
    from lstmkit.text import TextVectorizer

    config = LMConfig(**settings).check()
    out = Path(out)
    checkpoint.check_output(out, overwrite=overwrite, kind="pretrained")
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if len(texts) < 2:
        raise LstmkitError(f"pretraining needs at least 2 non-empty texts (one is held out), got {len(texts)}")
    t_start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(texts))
    n_val = min(max(1, round(HELD_OUT * len(texts))), len(texts) - 1)
    train_texts, val_texts = [texts[i] for i in order[n_val:]], [texts[i] for i in order[:n_val]]

    vectorizer = TextVectorizer(max_tokens=config.max_tokens, standardize=None if config.standardize == "none" else config.standardize, strip_html=config.strip_html)
    vectorizer.adapt(train_texts)
    train_seqs = windows(vectorizer.encode_ragged(train_texts), config.sequence_length)
    val_seqs = windows(vectorizer.encode_ragged(val_texts), config.sequence_length)
    if not train_seqs or not val_seqs:
        raise LstmkitError("the texts are too short to pretrain on: every text needs at least two tokens, in training and held-out parts alike")
    n_outputs = min(config.output_vocab, vectorizer.vocab_size)
    flat = np.concatenate(train_seqs)
    counts = np.bincount(np.where(flat < n_outputs, flat, UNK), minlength=n_outputs)
    tokens = int(flat.size)
    if verbose:
        unk = counts[UNK] / max(tokens, 1)
        print(f"pretraining text: {len(train_texts):,} texts ({tokens:,} tokens, {len(train_seqs):,} windows of <= {config.sequence_length}), "
              f"{len(val_texts):,} held out; vocabulary {vectorizer.vocab_size:,}, output {n_outputs:,} ids ([UNK] {unk:.1%} of targets) "
              f"({time.perf_counter() - t_start:.1f} s)", flush=True)  # fmt: skip

    key = jax.random.key(config.seed)
    params = init_lm(jax.random.fold_in(key, 0), config, n_outputs, counts)
    steps_per_epoch = math.ceil(len(train_seqs) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs if not config.max_steps else min(config.max_steps, steps_per_epoch * config.epochs)
    optimizer = make_optimizer("adam", config.learning_rate, clipnorm=config.clipnorm or None, schedule="cosine", total_steps=total_steps, warmup_steps=100)
    opt_state = optimizer.init(params)
    train_step, eval_step = _make_steps(config, optimizer, n_outputs, _sampling_log_q(counts))

    history = {"loss": [], "val_loss": [], "val_perplexity": [], "tokens_per_second": [], "epoch_time": []}
    history.update({f"val_perplexity_{d}": [] for d in config.directions})
    step = 0
    for epoch in range(config.epochs):
        t0 = time.perf_counter()
        bar = tqdm(total=tokens, desc=f"epoch {epoch + 1}/{config.epochs}", unit="tok", unit_scale=True, disable=not (verbose if progress is None else progress), dynamic_ncols=True)
        loss_sum, n_targets, seen, pending = 0.0, 0, 0, []
        for batch in _batches(train_seqs, config, seed=config.seed * 100003 + epoch, shuffle=True):
            if config.max_steps and step >= config.max_steps:
                break
            mask = batch.mask & (batch.weight[:, None] > 0)  # filler rows repeat a real row: no loss
            params, opt_state, s, c = train_step(params, opt_state, batch.ids, mask, jax.random.fold_in(key, 1 + step))
            pending.append((s, c, int(mask.sum())))
            step += 1
            # Read the loss one step behind, so the host never waits for the step it just queued.
            while len(pending) > 1 or (pending and step % 10 == 0):
                s_, c_, n_ = pending.pop(0)
                loss_sum, n_targets, seen = loss_sum + float(s_), n_targets + int(c_), seen + n_
                bar.update(n_)
            bar.set_postfix(loss=f"{loss_sum / max(n_targets, 1):.3f}", tok_s=f"{seen / (time.perf_counter() - t0):.0f}", refresh=False)
        for s_, c_, n_ in pending:
            loss_sum, n_targets, seen = loss_sum + float(s_), n_targets + int(c_), seen + n_
            bar.update(n_)
        elapsed = time.perf_counter() - t0
        bar.set_postfix(loss=f"{loss_sum / max(n_targets, 1):.3f}", tok_s=f"{seen / elapsed:.0f}")
        bar.close()
        if seen == 0:
            break
        val = evaluate_lm(eval_step, params, val_seqs, config)
        history["loss"].append(loss_sum / max(n_targets, 1))
        history["tokens_per_second"].append(seen / elapsed)
        history["epoch_time"].append(elapsed)
        for k, v in val.items():
            history[k].append(v)
        if verbose:
            per_dir = ", ".join(f"{d} {val[f'val_perplexity_{d}']:.1f}" for d in config.directions)
            print(f"epoch {epoch + 1}/{config.epochs}: loss {history['loss'][-1]:.4f} ({'sampled' if config.negatives and config.negatives < n_outputs - 1 else 'exact'}), "
                  f"{seen / elapsed:,.0f} tokens/s, {elapsed:.1f} s; held-out loss {val['val_loss']:.4f}, perplexity {val['val_perplexity']:.1f} "
                  f"({per_dir}; uniform would be {n_outputs - 1:,})", flush=True)  # fmt: skip
        if config.max_steps and step >= config.max_steps:
            break
    corpus = {"texts": len(train_texts), "held_out_texts": len(val_texts), "tokens": tokens, "steps": step, "output_vocab": n_outputs, "sources": list(sources or [])}
    save_pretrained(out, params, vectorizer, config, history, corpus)
    if verbose:
        print(f"pretrained weights saved to {out} ({time.perf_counter() - t_start:.0f} s in all); use them with `lstmkit train --pretrained {out}`", flush=True)
    return history


def pretrain_run(data=None, unlabeled=(), out="runs/lm", *, text_column=None, progress=True, overwrite=False, **settings):
    """What `lstmkit pretrain` runs: check the settings, read the sources, pretrain, write `out`.

    `out` is locked for the run; a pretrained directory there is replaced only with `overwrite`,
    and anything else there is refused.

    >>> pretrain_run("imdb", ["imdb"], "runs/lm", epochs=1)     # doctest: +SKIP
    """
    config = LMConfig(**settings).check()  # fail on a bad flag before reading 50,000 reviews
    out = Path(out)
    with checkpoint.output_lock(out):
        checkpoint.recover_interrupted_save(out, kind="pretrained")
        checkpoint.check_output(out, overwrite=overwrite, kind="pretrained")
        texts = pretraining_texts(data, unlabeled, text_column=text_column, seed=config.seed)
        sources = ([f"data:{data}"] if data is not None else []) + [f"unlabeled:{u}" for u in unlabeled]
        return pretrain(texts, out, progress=progress, sources=sources, **settings)


# -- the pretrained directory ----------------------------------------------------------------------


class Pretrained(NamedTuple):
    """A loaded pretrained directory: vectorizer, params (as `init_lm`), LMConfig, history, corpus."""

    vectorizer: object
    params: dict
    config: LMConfig
    history: dict
    corpus: dict
    directory: Path


def save_pretrained(directory, params, vectorizer, config: LMConfig, history, corpus):
    """Write the pretrained directory atomically: build it beside the target, then swap it in."""
    from safetensors.numpy import save_file

    import lstmkit

    with checkpoint.staged_directory(directory, kind="pretrained") as tmp:
        save_file(checkpoint.flatten_params(params), tmp / checkpoint.WEIGHTS)
        vectorizer.save(tmp)
        write_json(tmp / "history.json", history)
        meta = {
            "format_version": checkpoint.FORMAT_VERSION, "kind": KIND, "lstmkit_version": lstmkit.__version__,
            "config": asdict(config), "corpus": corpus, "files": checkpoint.file_checksums(tmp),
        }  # fmt: skip
        write_json(tmp / "config.json", meta)


def load_pretrained(directory) -> Pretrained:
    """Read a pretrained directory, verifying its format, kind, checksums and tensor shapes."""
    from safetensors.numpy import load_file

    from lstmkit.text import TextVectorizer

    path = checkpoint.resolve_dir(directory)
    if not path.is_dir():
        raise LstmkitError(f"pretrained directory {directory} does not exist; write one with `lstmkit pretrain --out {directory}`")
    if not (path / "config.json").exists():
        raise LstmkitError(f"{directory} is not a pretrained directory (no config.json); pass the --out folder of `lstmkit pretrain`")
    path, meta = checkpoint.read_config(path)
    if meta.get("kind") != KIND:
        raise LstmkitError(f"{directory} is a model directory, not a pretrained one; pass the --out folder of `lstmkit pretrain`")
    config = LMConfig(**meta["config"])
    n_outputs = int(meta["corpus"]["output_vocab"])
    template = jax.eval_shape(lambda k: init_lm(k, config, n_outputs), jax.random.key(0))
    params = checkpoint.unflatten_like(template, load_file(path / checkpoint.WEIGHTS))
    history = json.loads((path / "history.json").read_text())
    return Pretrained(TextVectorizer.load(path), params, config, history, meta["corpus"], path)


# -- use by the classifier -------------------------------------------------------------------------


def check_settings(pretrained: Pretrained, settings: dict):
    """Refuse a classifier config (a resolved preset) whose sizes differ from the pretrained ones."""
    pre = pretrained.config
    for key in ("max_tokens", "embedding_dim", "lstm_units", "bidirectional", "standardize", "strip_html"):
        if key in settings and settings[key] != getattr(pre, key):
            flag = key.replace("_", "-")
            hint = (f"--{flag} {getattr(pre, key)}" if not isinstance(getattr(pre, key), bool) else f"--{'' if getattr(pre, key) else 'no-'}{flag}")
            raise LstmkitError(f"the pretrained weights in {pretrained.directory} have {key}={getattr(pre, key)!r} but the classifier has {settings[key]!r}; "
                               f"train with {hint}, or pretrain again with the classifier's sizes")  # fmt: skip


def install_pretrained(model, pretrained):
    """Put the pretrained vocabulary, embedding and first LSTM layer's weights into a built classifier.

    model: a `Sequential` that starts with a TextVectorizer and an Embedding, with an LSTM or
    Bidirectional layer after it; its params are replaced (the vectorizer's vocabulary too).
    pretrained: a directory or a loaded `Pretrained`. Sizes must match exactly.

    >>> install_pretrained(model, "runs/lm")                  # doctest: +SKIP
    """
    from lstmkit import layers as L

    pre = pretrained if isinstance(pretrained, Pretrained) else load_pretrained(pretrained)
    if model.vectorizer is None:
        raise LstmkitError("this classifier takes token ids; pretrained weights need one that starts with a TextVectorizer")
    mine, theirs = model.vectorizer.get_config(), pre.vectorizer.get_config()
    for key in ("standardize", "split", "ngrams", "strip_html"):
        if mine[key] != theirs[key]:
            raise LstmkitError(f"the pretrained vocabulary was built with {key}={theirs[key]!r} but the classifier's vectorizer has {mine[key]!r}; use the same text settings")
    emb = next((i for i, layer in enumerate(model.layers) if isinstance(layer, L.Embedding)), None)
    rec = next((i for i, layer in enumerate(model.layers) if isinstance(layer, (L.LSTM, L.Bidirectional)) and emb is not None and i > emb), None)
    if emb is None or rec is None:
        raise LstmkitError("the classifier needs an Embedding followed by an LSTM or Bidirectional layer to take pretrained weights")
    if model.params is None:
        model.build()
    table = pre.params["embedding"]["table"]
    if tuple(table.shape) != tuple(model.params[emb]["table"].shape):
        (V, E), (v, e) = table.shape, model.params[emb]["table"].shape
        raise LstmkitError(f"the pretrained embedding is {V} tokens x {E} dims but the classifier's is {v} x {e}; train with --max-tokens {V} --embedding-dim {E}")
    layer = model.layers[rec]
    bidirectional = isinstance(layer, L.Bidirectional)
    if bidirectional != pre.config.bidirectional:
        raise LstmkitError(f"the pretrained LSTM is {'bi' if pre.config.bidirectional else 'uni'}directional but the classifier's first LSTM layer is "
                           f"{'bi' if bidirectional else 'uni'}directional; train with --{'' if pre.config.bidirectional else 'no-'}bidirectional")  # fmt: skip
    units = (layer.layer if bidirectional else layer).units
    if units != pre.config.lstm_units:
        raise LstmkitError(f"the pretrained LSTM has {pre.config.lstm_units} units but the classifier's first LSTM layer has {units}; train with --lstm-units {pre.config.lstm_units}")
    lstm = pre.params["lstm"]
    if not bidirectional and layer.go_backwards and "backward" not in lstm:
        raise LstmkitError("the classifier's first LSTM reads backwards but the pretrained LM has only a forward direction; pretrain with --bidirectional")
    if bidirectional:
        new_rec = {"forward": dict(lstm["forward"]), "backward": dict(lstm["backward"])}
    else:
        new_rec = dict(lstm["backward" if layer.go_backwards else "forward"])
    params = list(model.params)
    params[emb] = {"table": jnp.asarray(table)}
    params[rec] = jax.tree.map(jnp.asarray, new_rec)
    model.vectorizer.set_vocabulary(pre.vectorizer.vocabulary)
    model.params = params
    return model
