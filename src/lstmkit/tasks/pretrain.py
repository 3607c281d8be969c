"""Language-model pretraining on unlabeled text (`lstmkit pretrain`).

The model and its losses are `lstmkit.tasks.lm`'s; the directory it writes is
`lstmkit.tasks.pretrained`'s (whose names this module also exports, as it did before). Long texts
are cut into consecutive windows of `sequence_length` tokens (truncated BPTT: each window starts
from a zero state), so every token of the corpus is read, not only the first T.

    >>> texts = ["the cat sat on the mat"] * 40
    >>> history = pretrain(texts, "/tmp/lm", max_tokens=20, embedding_dim=8, lstm_units=8,
    ...                    epochs=2, batch_size=8, verbose=False)            # doctest: +SKIP
    >>> history["val_perplexity"][-1] < 2                                     # doctest: +SKIP
    True
"""

from __future__ import annotations

import math
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from lstmkit.core import fused
from lstmkit.data.batching import iterate_batches, prefetch
from lstmkit.data.text import OOV_ID, PAD_ID, TextVectorizer
from lstmkit.data.unlabeled import pretraining_texts
from lstmkit.errors import LstmkitError
from lstmkit.io import output_folder
from lstmkit.nn.batches import pad_multiple
from lstmkit.nn.optim import make_optimizer
from lstmkit.tasks.lm import SAMPLING_POWER, init_lm, lm_nll
from lstmkit.tasks.presets import LMConfig
from lstmkit.tasks.pretrained import (
    KIND,
    Pretrained,
    check_settings,
    install_pretrained,
    load_pretrained,
    save_pretrained,
)

# The pretrained directory's names stay importable from here, as they were before pretrained.py.
__all__ = [
    "HELD_OUT", "KIND", "Pretrained", "check_settings", "evaluate_lm", "install_pretrained", "load_pretrained",
    "pretrain", "pretrain_run", "save_pretrained", "windows",
]  # fmt: skip

HELD_OUT = 0.02  # share of the texts kept for the LM's held-out loss and perplexity


def windows(sequences, length):
    """Cut each id sequence into consecutive windows of at most `length` ids; drop windows under 2.

    >>> [w.tolist() for w in windows([np.arange(1, 6), np.array([7])], 2)]
    [[1, 2], [3, 4]]
    """
    out = []
    for s in sequences:
        out += [s[i : i + length] for i in range(0, len(s), length) if len(s) - i >= 2]
    return out


def _sampling_log_q(counts):
    """log q (K,) over the output ids, q ~ count^0.75, never the padding id."""
    weight = np.asarray(counts, np.float64) ** SAMPLING_POWER
    weight[PAD_ID] = 0.0
    weight = np.maximum(weight, 0.0)
    weight[1:] += 1e-6 * weight.sum() / max(len(weight) - 1, 1)  # every word can be drawn
    with np.errstate(divide="ignore"):
        return jnp.asarray(np.log(weight / weight.sum()), jnp.float32)


def _make_steps(config: LMConfig, optimizer, n_outputs, log_q):
    directions, sampled = config.directions, config.negatives if config.negatives < n_outputs - 1 else 0

    @partial(jax.jit, donate_argnums=(0, 1))
    def train_step(params, opt_state, ids, mask, key):
        def loss(p):
            sums, counts = lm_nll(
                p, ids, mask, key, directions=directions, n_outputs=n_outputs, negatives=sampled, log_q=log_q
            )
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
    it = iterate_batches(
        sequences,
        None,
        config.batch_size,
        seed=seed,
        shuffle=shuffle,
        bucket=True,
        pad_multiple=pad_multiple(config.sequence_length),
        max_length=config.sequence_length,
    )
    return prefetch(it, 2)


def evaluate_lm(eval_step, params, sequences, config):
    """Exact held-out loss (mean nll per target token) and perplexity, per direction and overall."""
    pending = [
        eval_step(params, b.ids, b.mask & (b.weight[:, None] > 0))
        for b in _batches(sequences, config, seed=0, shuffle=False)
    ]
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
    config = LMConfig(**settings).check()
    out = Path(out)
    output_folder.check_output(out, overwrite=overwrite, kind="pretrained")
    fused.available()  # build the LSTM kernel now, not inside the first trace
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if len(texts) < 2:
        raise LstmkitError(f"pretraining needs at least 2 non-empty texts (one is held out), got {len(texts)}")
    t_start = time.perf_counter()
    train_texts, val_texts = _hold_out(texts, config.seed)
    vectorizer, train_seqs, val_seqs = _windows_of(train_texts, val_texts, config)
    n_outputs = min(config.output_vocab, vectorizer.vocab_size)
    flat = np.concatenate(train_seqs)
    counts = np.bincount(np.where(flat < n_outputs, flat, OOV_ID), minlength=n_outputs)
    tokens = int(flat.size)
    if verbose:
        unk = counts[OOV_ID] / max(tokens, 1)
        print(
            f"pretraining text: {len(train_texts):,} texts ({tokens:,} tokens, {len(train_seqs):,} windows of <= {config.sequence_length}), "
            f"{len(val_texts):,} held out; vocabulary {vectorizer.vocab_size:,}, output {n_outputs:,} ids ([UNK] {unk:.1%} of targets) "
            f"({time.perf_counter() - t_start:.1f} s)",
            flush=True,
        )
    show_bar = verbose if progress is None else progress
    params, history, step = _train_lm(
        config, train_seqs, val_seqs, counts, n_outputs, tokens, verbose=verbose, show_bar=show_bar
    )
    corpus = {
        "texts": len(train_texts),
        "held_out_texts": len(val_texts),
        "tokens": tokens,
        "steps": step,
        "output_vocab": n_outputs,
        "sources": list(sources or []),
    }
    save_pretrained(out, params, vectorizer, config, history, corpus)
    if verbose:
        print(
            f"pretrained weights saved to {out} ({time.perf_counter() - t_start:.0f} s in all); use them with `lstmkit train --pretrained {out}`",
            flush=True,
        )
    return history


def _hold_out(texts, seed):
    """(training texts, held-out texts): a seeded shuffle, HELD_OUT of them (at least one) held out."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(texts))
    n_val = min(max(1, round(HELD_OUT * len(texts))), len(texts) - 1)
    return [texts[i] for i in order[n_val:]], [texts[i] for i in order[:n_val]]


def _windows_of(train_texts, val_texts, config: LMConfig):
    """The vectorizer adapted on the training texts, and both parts as windows of ids."""
    vectorizer = TextVectorizer(
        max_tokens=config.max_tokens,
        standardize=None if config.standardize == "none" else config.standardize,
        strip_html=config.strip_html,
    )
    vectorizer.adapt(train_texts)
    train_seqs = windows(vectorizer.encode_ragged(train_texts), config.sequence_length)
    val_seqs = windows(vectorizer.encode_ragged(val_texts), config.sequence_length)
    if not train_seqs or not val_seqs:
        raise LstmkitError(
            "the texts are too short to pretrain on: every text needs at least two tokens, in training and held-out parts alike"
        )
    return vectorizer, train_seqs, val_seqs


def _train_lm(config: LMConfig, train_seqs, val_seqs, counts, n_outputs, tokens, *, verbose, show_bar):
    """Initialise the LM and train it epoch by epoch: (params, history, steps taken).

    counts: (K,) how often each of the n_outputs = K output ids is a training target; tokens: their sum.
    """
    key = jax.random.key(config.seed)
    params = init_lm(jax.random.fold_in(key, 0), config, n_outputs, counts)
    steps_per_epoch = math.ceil(len(train_seqs) / config.batch_size)
    total_steps = (
        steps_per_epoch * config.epochs
        if not config.max_steps
        else min(config.max_steps, steps_per_epoch * config.epochs)
    )
    optimizer = make_optimizer(
        "adam",
        config.learning_rate,
        clipnorm=config.clipnorm or None,
        schedule="cosine",
        total_steps=total_steps,
        warmup_steps=100,
    )
    opt_state = optimizer.init(params)
    train_step, eval_step = _make_steps(config, optimizer, n_outputs, _sampling_log_q(counts))

    history = {"loss": [], "val_loss": [], "val_perplexity": [], "tokens_per_second": [], "epoch_time": []}
    history.update({f"val_perplexity_{d}": [] for d in config.directions})
    step = 0
    for epoch in range(config.epochs):
        bar = _epoch_bar(tokens, epoch, config, show_bar)
        params, opt_state, step, loss, seen, elapsed = _train_epoch(
            train_step, params, opt_state, train_seqs, config, key, epoch=epoch, step=step, bar=bar
        )
        if seen == 0:
            break
        val = evaluate_lm(eval_step, params, val_seqs, config)
        history["loss"].append(loss)
        history["tokens_per_second"].append(seen / elapsed)
        history["epoch_time"].append(elapsed)
        for k, v in val.items():
            history[k].append(v)
        if verbose:
            _print_epoch(epoch, config, history, val, seen, elapsed, n_outputs)
        if config.max_steps and step >= config.max_steps:
            break
    return params, history, step


def _epoch_bar(tokens, epoch, config: LMConfig, show):
    """One epoch's progress bar, counted in target tokens."""
    from tqdm.auto import tqdm

    return tqdm(
        total=tokens,
        desc=f"epoch {epoch + 1}/{config.epochs}",
        unit="tok",
        unit_scale=True,
        disable=not show,
        dynamic_ncols=True,
    )


def _train_epoch(train_step, params, opt_state, train_seqs, config: LMConfig, key, *, epoch, step, bar):
    """One pass over the shuffled windows (stopping at max_steps in all), the bar closed at its end.

    Returns (params, opt_state, step, mean sampled loss, tokens seen, seconds).
    """
    t0 = time.perf_counter()
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
        bar.set_postfix(
            loss=f"{loss_sum / max(n_targets, 1):.3f}",
            tok_s=f"{seen / (time.perf_counter() - t0):.0f}",
            refresh=False,
        )
    for s_, c_, n_ in pending:
        loss_sum, n_targets, seen = loss_sum + float(s_), n_targets + int(c_), seen + n_
        bar.update(n_)
    elapsed = time.perf_counter() - t0
    bar.set_postfix(loss=f"{loss_sum / max(n_targets, 1):.3f}", tok_s=f"{seen / elapsed:.0f}")
    bar.close()
    return params, opt_state, step, loss_sum / max(n_targets, 1), seen, elapsed


def _print_epoch(epoch, config: LMConfig, history, val, seen, elapsed, n_outputs):
    """The epoch's line: sampled training loss, speed, held-out loss and perplexities."""
    per_dir = ", ".join(f"{d} {val[f'val_perplexity_{d}']:.1f}" for d in config.directions)
    print(
        f"epoch {epoch + 1}/{config.epochs}: loss {history['loss'][-1]:.4f} ({'sampled' if config.negatives and config.negatives < n_outputs - 1 else 'exact'}), "
        f"{seen / elapsed:,.0f} tokens/s, {elapsed:.1f} s; held-out loss {val['val_loss']:.4f}, perplexity {val['val_perplexity']:.1f} "
        f"({per_dir}; uniform would be {n_outputs - 1:,})",
        flush=True,
    )


def pretrain_run(
    data=None,
    unlabeled=(),
    out="runs/lm",
    *,
    text_column=None,
    progress=True,
    overwrite=False,
    file_format=None,
    header=None,
    **settings,
):
    """What `lstmkit pretrain` runs: check the settings, read the sources, pretrain, write `out`.

    `out` is locked for the run; a pretrained directory there is replaced only with `overwrite`,
    and anything else there is refused.

    >>> pretrain_run("imdb", ["imdb"], "runs/lm", epochs=1)     # doctest: +SKIP
    """
    config = LMConfig(**settings).check()  # fail on a bad flag before reading 50,000 reviews
    out = Path(out)
    with output_folder.claim_output(out, overwrite=overwrite, kind="pretrained"):
        texts = pretraining_texts(
            data, unlabeled, text_column=text_column, seed=config.seed, file_format=file_format, header=header
        )
        sources = ([f"data:{data}"] if data is not None else []) + [f"unlabeled:{u}" for u in unlabeled]
        return pretrain(texts, out, progress=progress, sources=sources, **settings)
