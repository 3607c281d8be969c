"""The batches a model reads: shuffled, length-bucketed ones for training, and ones sorted by
length for evaluation and prediction, split when texts are longer than training's.

Shape legend: N examples, B batch size, T padded time steps of one batch, L the longest sequence
the model reads. `lstmkit.data.batching` makes the batches; this module chooses their lengths
for a model from the texts' lengths (`lstmkit.data.lengths`), so that few padded steps are
computed and few shapes (few compilations) occur.
"""

from __future__ import annotations

import numpy as np

from lstmkit.data.batching import (
    Batch,
    batch_lengths,
    iterate_batches,
    make_batch,
    plan_ladder,
    prefetch,
    sequence_lengths,
)


def pad_multiple(max_length):
    """What a batch without chosen lengths (one small request, unbucketed batches, pretraining)
    rounds its length up to: a quarter of the maximum, so at most 4 shapes."""
    return max(8, -(-max_length // 4)) if max_length else 32


def max_length(model, inference=False):
    """The longest sequence the model reads: the vectorizer's length (its inference length when
    inference and one is set), or the id matrix's width."""
    if model.vectorizer is not None:
        if inference and model.inference_length:
            return model.inference_length
        return model.vectorizer.output_sequence_length
    return model.input_length


def data_lengths(model, ids, batch_size, passes=1, inference=False):
    """The padded lengths for batches of `ids`, chosen from the longest texts of the batches that
    training (shuffled, sorted within windows) or inference (sorted) makes of them, capped at what
    the model reads: at most 8, fewer where one more would not pay for its compilation over
    `passes` reads of the texts (`lstmkit.data.batching.batch_lengths`)."""
    longest = max_length(model, inference)
    lengths = sequence_lengths(ids)
    lengths = np.minimum(lengths, longest) if longest else lengths
    plan = {"shuffle": False, "bucket_window": len(ids) // batch_size + 1} if inference else {}
    return batch_lengths(lengths, batch_size, passes=passes, **plan)


def training_batches(
    model, ids, labels, batch_size, *, seed, shuffle, bucket, shuffle_buffer=None, gather=None, pad_lengths=None
):
    """One epoch's batches, prepared on a background thread while the steps run.

    ids: ragged id arrays, a padded (N, L) array, or a token file's rows (`lstmkit.data.token_file`);
    gather: the rows of each batch this process reads (its shard across processes), None for all;
    pad_lengths: the lengths bucketed batches are padded to, `data_lengths` for the whole run
    (`lstmkit.nn.train.fit` chooses them once); None chooses them here, for one epoch.

    Bucketed, each batch (texts of similar length: sorted within windows) is padded to the
    shortest of those lengths that holds it, so a corpus of short sentences at
    --sequence-length 800 computes about its own lengths; the same lengths every epoch (and
    after a resume) compile once. Which texts make up a batch, and in what order, does not
    depend on the lengths: only T does, and padded steps are masked."""
    longest = max_length(model)
    it = iterate_batches(
        ids,
        labels,
        batch_size,
        seed=seed,
        shuffle=shuffle,
        bucket=bucket,
        shuffle_buffer=shuffle_buffer,
        pad_multiple=pad_multiple(longest),
        pad_lengths=pad_lengths or (data_lengths(model, ids, batch_size) if bucket and len(ids) else None),
        max_length=longest,
        gather=gather,
    )
    return prefetch(it, 2)


def inference_batches(model, ids, labels, batch_size, pad_lengths=None, pad_rows=None):
    """Batches for evaluation and prediction, sorted by length (one bucket window over all), so
    little padding is computed; each Batch's `index` says which input rows it holds. Batches
    longer than training are split to hold no more tokens than batch_size x the training length.

    Their lengths are chosen from the texts' own (`data_lengths`). A request smaller than a batch
    is not padded to one: its rows are the next power of two (1 for one text) and its length its
    longest text's, rounded up to `pad_multiple`, so one review of 993 tokens is one (1, 1000)
    batch, not two (128, 1600) ones.
    pad_lengths: the lengths a batch may take, instead of ones chosen from the texts; a caller
    that gives them (the server, which compiles its shapes ahead) gets batch_size rows,
    or with `pad_rows` too, batches of those row counts, longest texts first (`plan_ladder`)."""
    trained, longest = max_length(model), max_length(model, inference=True)
    if pad_rows and pad_lengths:
        lengths = np.minimum(sequence_lengths(ids), longest) if longest else sequence_lengths(ids)
        batches = (make_batch(ids, labels, index, t) for index, t in plan_ladder(lengths, pad_rows, pad_lengths))
    else:
        rows = batch_size if pad_lengths else min(batch_size, 1 << max(len(ids) - 1, 0).bit_length())
        batches = iterate_batches(
            ids,
            labels,
            rows,
            shuffle=False,
            bucket=True,
            bucket_window=len(ids) // rows + 1,
            max_length=longest,
            pad_multiple=pad_multiple(trained),
            pad_lengths=pad_lengths or (data_lengths(model, ids, rows, inference=True) if len(ids) > rows else None),
        )
    return split_long(batches, batch_size * trained) if trained and longest and longest > trained else batches


def split_long(batches, max_tokens):
    """Each batch of more than max_tokens (rows x steps) as smaller ones of max_tokens // steps
    rows (the last one filled with weight-0 rows of index -1): memory stays that of a batch at the
    training length, and each length gets one row count, so one more shape to compile at most."""
    for b in batches:
        B, T = b.ids.shape
        rows = max(1, max_tokens // T)
        if rows >= B:
            yield b
            continue
        for start in range(0, B, rows):
            part = Batch(*(a[start : start + rows] for a in b))
            short = rows - len(part.weight)
            if short:  # filler: copies of the first row, weight 0, index -1
                fill = Batch(*(np.repeat(a[:1], short, axis=0) for a in part))
                fill = fill._replace(weight=np.zeros_like(fill.weight), index=np.full_like(fill.index, -1))
                part = Batch(*(np.concatenate([a, f]) for a, f in zip(part, fill)))
            yield part
