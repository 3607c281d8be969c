"""Language-model pretraining on unlabeled text (`lstmkit pretrain`), and the pretrained directory.

The model and its losses are `lstmkit.tasks.lm`'s. Long texts are cut into consecutive windows of
`sequence_length` tokens (truncated BPTT: each window starts from a zero state), so every token of
the corpus is read, not only the first T.

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
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstmkit.atomic import write_json
from lstmkit.core import fused
from lstmkit.data.batching import iterate_batches, prefetch
from lstmkit.data.text import OOV_ID, PAD_ID, TextVectorizer
from lstmkit.data.unlabeled import pretraining_texts
from lstmkit.errors import LstmkitError
from lstmkit.io import checkpoint
from lstmkit.nn import layers as L
from lstmkit.nn.optim import make_optimizer
from lstmkit.nn.train import pad_multiple
from lstmkit.tasks.lm import SAMPLING_POWER, init_lm, lm_nll
from lstmkit.tasks.presets import LMConfig
from lstmkit.version import __version__

KIND = checkpoint.PRETRAINED_KIND


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
    from tqdm.auto import tqdm

    config = LMConfig(**settings).check()
    out = Path(out)
    checkpoint.check_output(out, overwrite=overwrite, kind="pretrained")
    fused.available()  # build the LSTM kernel now, not inside the first trace
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if len(texts) < 2:
        raise LstmkitError(f"pretraining needs at least 2 non-empty texts (one is held out), got {len(texts)}")
    t_start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(texts))
    n_val = min(max(1, round(HELD_OUT * len(texts))), len(texts) - 1)
    train_texts, val_texts = [texts[i] for i in order[n_val:]], [texts[i] for i in order[:n_val]]

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
        t0 = time.perf_counter()
        bar = tqdm(
            total=tokens,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            unit="tok",
            unit_scale=True,
            disable=not (verbose if progress is None else progress),
            dynamic_ncols=True,
        )
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
            print(
                f"epoch {epoch + 1}/{config.epochs}: loss {history['loss'][-1]:.4f} ({'sampled' if config.negatives and config.negatives < n_outputs - 1 else 'exact'}), "
                f"{seen / elapsed:,.0f} tokens/s, {elapsed:.1f} s; held-out loss {val['val_loss']:.4f}, perplexity {val['val_perplexity']:.1f} "
                f"({per_dir}; uniform would be {n_outputs - 1:,})",
                flush=True,
            )
        if config.max_steps and step >= config.max_steps:
            break
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


def pretrain_run(
    data=None, unlabeled=(), out="runs/lm", *, text_column=None, progress=True, overwrite=False, **settings
):
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

    with checkpoint.staged_directory(directory, kind="pretrained") as tmp:
        save_file(checkpoint.flatten_params(params), tmp / checkpoint.WEIGHTS)
        vectorizer.save(tmp)
        write_json(tmp / "history.json", history)
        meta = {
            "format_version": checkpoint.FORMAT_VERSION, "kind": KIND, "lstmkit_version": __version__,
            "config": asdict(config), "corpus": corpus, "files": checkpoint.file_checksums(tmp),
        }  # fmt: skip
        write_json(tmp / "config.json", meta)


def load_pretrained(directory) -> Pretrained:
    """Read a pretrained directory, verifying its format, kind, checksums and tensor shapes."""
    from safetensors.numpy import load_file

    path = checkpoint.resolve_dir(directory)
    if not path.is_dir():
        raise LstmkitError(
            f"pretrained directory {directory} does not exist; write one with `lstmkit pretrain --out {directory}`"
        )
    if not (path / "config.json").exists():
        raise LstmkitError(
            f"{directory} is not a pretrained directory (no config.json); pass the --out folder of `lstmkit pretrain`"
        )
    path, meta = checkpoint.read_config(path)
    if meta.get("kind") != KIND:
        raise LstmkitError(
            f"{directory} is a model directory, not a pretrained one; pass the --out folder of `lstmkit pretrain`"
        )
    config = LMConfig(**meta["config"])
    n_outputs = int(meta["corpus"]["output_vocab"])
    template = jax.eval_shape(lambda k: init_lm(k, config, n_outputs), jax.random.key(0))
    params = checkpoint.unflatten_like(template, load_file(path / checkpoint.WEIGHTS))
    history = json.loads((path / "history.json").read_text())
    return Pretrained(TextVectorizer.load(path), params, config, history, meta["corpus"], path)


def check_settings(pretrained: Pretrained, settings: dict):
    """Refuse a classifier config (a resolved preset) whose sizes differ from the pretrained ones."""
    pre = pretrained.config
    for key in ("max_tokens", "embedding_dim", "lstm_units", "bidirectional", "standardize", "strip_html"):
        if key in settings and settings[key] != getattr(pre, key):
            flag = key.replace("_", "-")
            hint = (
                f"--{flag} {getattr(pre, key)}"
                if not isinstance(getattr(pre, key), bool)
                else f"--{'' if getattr(pre, key) else 'no-'}{flag}"
            )
            raise LstmkitError(
                f"the pretrained weights in {pretrained.directory} have {key}={getattr(pre, key)!r} but the classifier has {settings[key]!r}; "
                f"train with {hint}, or pretrain again with the classifier's sizes"
            )


def install_pretrained(model, pretrained):
    """Put the pretrained vocabulary, embedding and first LSTM layer's weights into a built classifier.

    model: a `Sequential` that starts with a TextVectorizer and an Embedding, with an LSTM or
    Bidirectional layer after it; its params are replaced (the vectorizer's vocabulary too).
    pretrained: a directory or a loaded `Pretrained`. Sizes must match exactly.

    >>> install_pretrained(model, "runs/lm")                  # doctest: +SKIP
    """
    pre = pretrained if isinstance(pretrained, Pretrained) else load_pretrained(pretrained)
    if model.vectorizer is None:
        raise LstmkitError(
            "this classifier takes token ids; pretrained weights need one that starts with a TextVectorizer"
        )
    mine, theirs = model.vectorizer.get_config(), pre.vectorizer.get_config()
    for key in ("standardize", "split", "ngrams", "strip_html"):
        if mine[key] != theirs[key]:
            raise LstmkitError(
                f"the pretrained vocabulary was built with {key}={theirs[key]!r} but the classifier's vectorizer has {mine[key]!r}; use the same text settings"
            )
    emb = next((i for i, layer in enumerate(model.layers) if isinstance(layer, L.Embedding)), None)
    rec = next(
        (
            i
            for i, layer in enumerate(model.layers)
            if isinstance(layer, (L.LSTM, L.Bidirectional)) and emb is not None and i > emb
        ),
        None,
    )
    if emb is None or rec is None:
        raise LstmkitError(
            "the classifier needs an Embedding followed by an LSTM or Bidirectional layer to take pretrained weights"
        )
    if model.params is None:
        model.build()
    table = pre.params["embedding"]["table"]
    if tuple(table.shape) != tuple(model.params[emb]["table"].shape):
        (V, E), (v, e) = table.shape, model.params[emb]["table"].shape
        raise LstmkitError(
            f"the pretrained embedding is {V} tokens x {E} dims but the classifier's is {v} x {e}; train with --max-tokens {V} --embedding-dim {E}"
        )
    layer = model.layers[rec]
    bidirectional = isinstance(layer, L.Bidirectional)
    if bidirectional != pre.config.bidirectional:
        raise LstmkitError(
            f"the pretrained LSTM is {'bi' if pre.config.bidirectional else 'uni'}directional but the classifier's first LSTM layer is "
            f"{'bi' if bidirectional else 'uni'}directional; train with --{'' if pre.config.bidirectional else 'no-'}bidirectional"
        )
    units = (layer.layer if bidirectional else layer).units
    if units != pre.config.lstm_units:
        raise LstmkitError(
            f"the pretrained LSTM has {pre.config.lstm_units} units but the classifier's first LSTM layer has {units}; train with --lstm-units {pre.config.lstm_units}"
        )
    lstm = pre.params["lstm"]
    if not bidirectional and layer.go_backwards and "backward" not in lstm:
        raise LstmkitError(
            "the classifier's first LSTM reads backwards but the pretrained LM has only a forward direction; pretrain with --bidirectional"
        )
    if bidirectional:
        new_rec = {"forward": dict(lstm["forward"]), "backward": dict(lstm["backward"])}
    else:
        new_rec = dict(lstm["backward" if layer.go_backwards else "forward"])
    params = list(model.params)
    params[emb] = {"table": jnp.asarray(table)}
    params[rec] = jax.tree.map(jnp.asarray, new_rec)
    model.vectorizer.set_vocabulary(pre.vectorizer.vocabulary)
    return model.set_weights(params)
