"""Batches for training and inference: seeded shuffling, length buckets, masks, fixed shapes.

Shape legend: N examples, B batch size, T padded time steps of one batch.

Every batch has exactly B rows, so JAX compiles once per distinct T and never for a short last
batch: missing rows are filled with copies of real rows whose `weight` is 0 (copies, not
all-padding rows, so no row has length 0 and no mean over time divides by zero). T is rounded up
to a multiple of `pad_multiple`, capped at `max_length`: few distinct shapes, few compilations.

Two modes:
- bucket=True: shuffle, cut the order into windows of `bucket_window` batches, sort each window
  by length, cut it into batches, shuffle the batches. Batches hold similar lengths, so little
  padding is computed; the batch order stays random.
- bucket=False: plain batches of the shuffled order with a fixed T (= max_length), what Keras
  does with `output_sequence_length`, for runs that must match Keras step for step.

`plan_batches` is the pure part (which example goes in which row); `iterate_batches` turns each
plan into arrays; `prefetch` overlaps that work with compute on a background thread.

    >>> seqs = [np.array([5, 6, 7]), np.array([8]), np.array([9, 9])]
    >>> b = next(iterate_batches(seqs, np.array([1, 0, 1]), 4, shuffle=False, bucket=False, pad_multiple=1))
    >>> b.ids.tolist(), b.weight.tolist()
    ([[5, 6, 7], [8, 0, 0], [9, 9, 0], [5, 6, 7]], [1.0, 1.0, 1.0, 0.0])
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import numpy as np

from lstmkit.data.lengths import COMPILE_STEPS, bucket_lengths
from lstmkit.errors import LstmkitError


class Batch(NamedTuple):
    """One batch: ids int32 (B, T), mask bool (B, T), labels int32 (B,), weight float32 (B,),
    index int64 (B,).

    mask[b, t] is True for real tokens; weight is 1 for real rows and 0 for filler rows; index
    is each row's position in the input (-1 for filler), to put predictions back in order.
    """

    ids: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    weight: np.ndarray
    index: np.ndarray


def sequence_lengths(sequences) -> np.ndarray:
    """Lengths (N,) of ragged sequences, or of the rows of a right-padded (N, L) array.

    For a padded array the length is the position after the last non-zero id (0 is padding).

    >>> sequence_lengths(np.array([[4, 5, 0], [0, 0, 0], [1, 0, 2]])).tolist()
    [2, 0, 3]
    """
    known = getattr(sequences, "lengths", None)  # a token file's rows know theirs (`lstmkit.data.token_file`)
    if known is not None:
        return np.asarray(known, np.int64)
    if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
        nonzero = sequences != 0
        last = sequences.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
        return np.where(nonzero.any(axis=1), last, 0).astype(np.int64)
    return np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))


def shuffle_order(n: int, rng: np.random.Generator, buffer_size: int | None = None) -> np.ndarray:
    """A random order of range(n): a full permutation, or tf.data's buffered shuffle.

    With a buffer (as `tf.data.Dataset.shuffle(buffer_size)`): fill a buffer with the first
    `buffer_size` items, then repeatedly emit a random buffer slot and refill it with the next
    item. Small buffers over sorted data keep the data nearly sorted, which is the point of
    emulating it (to reproduce Keras runs, and to show why it hurts).

    >>> sorted(shuffle_order(5, np.random.default_rng(0), buffer_size=2).tolist())
    [0, 1, 2, 3, 4]
    """
    if buffer_size is None or buffer_size >= n:
        return rng.permutation(n)
    if buffer_size < 1:
        raise LstmkitError(f"shuffle_buffer must be a positive int or None, got {buffer_size}")
    buffer = list(range(buffer_size))
    order = np.empty(n, dtype=np.int64)
    picks = rng.random(n)
    for k, nxt in enumerate(range(buffer_size, n + buffer_size)):
        slot = int(picks[k] * len(buffer))
        order[k] = buffer[slot]
        if nxt < n:
            buffer[slot] = nxt
        else:  # input exhausted: the buffer drains
            buffer[slot] = buffer[-1]
            buffer.pop()
    return order


def plan_batches(
    lengths: np.ndarray,
    batch_size: int,
    *,
    seed: int = 0,
    shuffle: bool = True,
    bucket: bool = True,
    bucket_window: int = 32,
    shuffle_buffer: int | None = None,
    drop_remainder: bool = False,
) -> list[np.ndarray]:
    """Which examples make up each batch: a list of int64 (B,) index arrays.

    The last batch is padded with -1 (filler) unless drop_remainder. Pure: the same arguments
    give the same plan, so predictions can be put back in input order.

    >>> [p.tolist() for p in plan_batches(np.array([3, 1, 2]), 2, shuffle=False)]
    [[1, 2], [0, -1]]
    """
    if batch_size < 1:
        raise LstmkitError(f"batch_size must be a positive int, got {batch_size}")
    n = len(lengths)
    if n == 0:
        raise LstmkitError("no examples to batch; the dataset is empty")
    rng = np.random.default_rng(seed)
    order = shuffle_order(n, rng, shuffle_buffer) if shuffle else np.arange(n)
    if bucket:
        window = batch_size * max(1, bucket_window)
        # Stable sort within each window: equal lengths keep their shuffled order.
        order = np.concatenate(
            [w[np.argsort(lengths[w], kind="stable")] for w in np.split(order, range(window, n, window))]
        )
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if len(batches[-1]) < batch_size:
        if drop_remainder:
            batches.pop()
            if not batches:
                raise LstmkitError(
                    f"drop_remainder with {n} examples and batch_size {batch_size} leaves no batch; lower batch_size"
                )
        else:
            batches[-1] = np.concatenate([batches[-1], np.full(batch_size - len(batches[-1]), -1)])
    if bucket and shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def make_batch(sequences, labels: np.ndarray | None, index: np.ndarray, length: int, gather=None) -> Batch:
    """Gather rows `index` (-1 = filler) into a Batch with T = length (longer rows are cut).

    Filler rows repeat the batch's first real row, with weight 0. gather: a slice of the rows
    whose ids are read (one process's shard, `lstmkit.nn.parallel`); the other rows' ids stay
    padding, as nothing reads them here. Labels, weights and index cover every row.

    >>> b = make_batch([np.array([7, 8, 9])], np.array([1]), np.array([0, -1]), 2)
    >>> b.ids.tolist(), b.mask.tolist(), b.weight.tolist()
    ([[7, 8], [7, 8]], [[True, True], [True, True]], [1.0, 0.0])
    """
    real = index >= 0
    rows = np.where(real, index, index[real][0] if real.any() else 0)
    read = np.arange(len(rows))[gather if gather is not None else slice(None)]
    ids = np.zeros((len(rows), length), dtype=np.int32)
    mask = np.zeros((len(rows), length), dtype=bool)
    if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
        width = min(length, sequences.shape[1])
        ids[read, :width] = sequences[rows[read], :width]
        mask[read] = np.arange(length) < np.minimum(sequence_lengths(sequences[rows[read]]), length)[:, None]
        ids[~mask] = 0
    else:
        picked = [np.asarray(sequences[r])[:length] for r in rows[read]]
        lens = np.fromiter((len(p) for p in picked), dtype=np.int64, count=len(picked))
        mask[read] = np.arange(length) < lens[:, None]
        if lens.sum():
            ids[mask] = np.concatenate(picked)
    if labels is None:
        batch_labels = np.zeros(len(rows), dtype=np.int32)
    else:  # classes as int32; soft targets (float) keep their values
        batch_labels = np.asarray(labels)[rows]
        batch_labels = batch_labels.astype(np.float32 if batch_labels.dtype.kind == "f" else np.int32)
    return Batch(ids, mask, batch_labels, real.astype(np.float32), np.asarray(index, np.int64))


def iterate_batches(
    sequences: Sequence[np.ndarray] | np.ndarray,
    labels: np.ndarray | None,
    batch_size: int,
    *,
    seed: int = 0,
    shuffle: bool = True,
    bucket: bool = True,
    bucket_window: int = 32,
    pad_multiple: int = 16,
    max_length: int | None = None,
    shuffle_buffer: int | None = None,
    drop_remainder: bool = False,
    pad_lengths: Sequence[int] | None = None,
    gather: slice | None = None,
) -> Iterator[Batch]:
    """One epoch of Batches over ragged sequences (list of int arrays) or a padded (N, L) array.

    Args:
        labels: (N,) ints, or None (labels come back as zeros, for prediction).
        seed: seeds the shuffle; pass a different seed per epoch (e.g. seed + epoch).
        bucket: sort by length within windows of `bucket_window` batches (see module doc).
        pad_multiple: T is rounded up to a multiple of it (capped at max_length).
        max_length: sequences are cut to it; in plain mode (bucket=False) T = max_length, or the
            array width / the longest sequence when None.
        shuffle_buffer: emulate tf.data's buffered shuffle of that size; None = full shuffle.
        drop_remainder: drop the last partial batch instead of filling it with weight-0 rows.
        pad_lengths: the T a bucketed batch may take, ascending; each takes the shortest that
            fits (the last one if none does), instead of a multiple of pad_multiple.
        gather: read only these rows of each batch (a process's shard; see `make_batch`); T
            still comes from every row, so each process's batch has the same shape.

    Every example appears in exactly one row with weight 1 per epoch (unless drop_remainder).
    """
    lengths = sequence_lengths(sequences)
    labels = None if labels is None else np.asarray(labels)
    if labels is not None and len(labels) != len(lengths):
        raise LstmkitError(f"{len(lengths)} sequences but {len(labels)} labels; pass one label per sequence")
    if pad_multiple < 1:
        raise LstmkitError(f"pad_multiple must be a positive int, got {pad_multiple}")
    if max_length is not None:
        lengths = np.minimum(lengths, max_length)
    plan = plan_batches(
        lengths,
        batch_size,
        seed=seed,
        shuffle=shuffle,
        bucket=bucket,
        bucket_window=bucket_window,
        shuffle_buffer=shuffle_buffer,
        drop_remainder=drop_remainder,
    )
    if bucket:
        fixed = None
    elif max_length is not None:
        fixed = max_length
    elif isinstance(sequences, np.ndarray) and sequences.ndim == 2:
        fixed = sequences.shape[1]
    else:
        fixed = _round_up(int(lengths.max()), pad_multiple)
    for index in plan:
        if fixed is None:
            longest = int(lengths[index[index >= 0]].max())
            t = _round_up(max(longest, 1), pad_multiple)
            if pad_lengths:
                t = next((p for p in pad_lengths if p >= longest), pad_lengths[-1])
            if max_length is not None:
                t = min(t, max_length)
        else:
            t = fixed
        yield make_batch(sequences, labels, index, t, gather)


def plan_ladder(
    lengths: np.ndarray, pad_rows: Sequence[int], pad_lengths: Sequence[int]
) -> list[tuple[np.ndarray, int]]:
    """Batches of few shapes for a server's mixed request: [(index (B,), T)], B in pad_rows, T in pad_lengths.

    The texts are taken longest first; a batch takes the shortest T that fits its first (longest)
    text and the texts after it while they need that T, up to the largest row count; its rows
    round up to the next of pad_rows, and the rows that rounding adds take the next (shorter)
    texts, free (-1 filler only when none are left). So a request mixing a 2,000-token review with
    short ones is not one batch of every text at 2,000 steps, and rows rounded up are not wasted.

    >>> [(i.tolist(), t) for i, t in plan_ladder(np.array([5, 300, 40, 35]), [1, 4], [64, 512])]
    [([1], 512), ([2, 3, 0, -1], 64)]
    """
    order = np.argsort(-np.asarray(lengths), kind="stable")
    need = [next((t for t in pad_lengths if t >= n), pad_lengths[-1]) for n in np.asarray(lengths)[order]]
    plan, k, most = [], 0, max(pad_rows)
    while k < len(order):
        t, end = need[k], k + 1
        while end < len(order) and end - k < most and need[end] == t:
            end += 1
        rows = next(r for r in pad_rows if r >= end - k)
        end = min(k + rows, len(order))  # rounding's spare rows take the next, shorter texts
        plan.append((np.concatenate([order[k:end], np.full(rows - (end - k), -1)]), t))
        k = end
    return plan


def batch_lengths(lengths: np.ndarray, batch_size: int, *, passes: int = 1, **plan) -> list[int]:
    """The padded lengths (at most 8) for the batches `plan_batches` makes of texts of these
    lengths: chosen from the batches' longest texts, each weighted by its rows
    (`lstmkit.data.lengths.bucket_lengths`), a length kept only if it saves a compilation's worth
    of steps over `passes` epochs. The plan is seed 0's, so every epoch, a resumed run and every
    process get the same lengths; another seed's batches have nearly the same longest texts.

    >>> batch_lengths(np.array([3, 4, 30, 31] * 5000), 2, shuffle=False, bucket_window=10**4)
    [4, 31]
    """
    rows = np.stack(plan_batches(lengths, batch_size, seed=0, **plan))  # (batches, B), -1 = filler
    longest = np.where(rows >= 0, lengths[rows], 0).max(axis=1)
    return bucket_lengths(longest, np.full(len(rows), batch_size), min_steps=COMPILE_STEPS // passes)


def padded_steps(sequences, batch_size: int, passes: int = 1, **kwargs) -> dict[str, int]:
    """Count the time steps an epoch computes: {'real', 'bucketed', 'plain', 'batches', 'shapes'}.

    'bucketed' and 'plain' count B * T summed over batches (filler rows included), with and
    without bucketing; 'real' counts the tokens. kwargs go to `iterate_batches`; without
    `pad_lengths`, bucketed batches take lengths chosen from the data as training's do
    (`batch_lengths`, for a run of `passes` epochs).
    """
    lengths = np.minimum(sequence_lengths(sequences), kwargs.get("max_length") or np.iinfo(np.int64).max)
    out = {"real": int(lengths.sum())}
    for name, bucket in (("bucketed", True), ("plain", False)):
        plan = {k: kwargs[k] for k in ("shuffle", "bucket_window", "shuffle_buffer") if k in kwargs}
        choose = bucket and "pad_lengths" not in kwargs
        chosen = {"pad_lengths": batch_lengths(lengths, batch_size, passes=passes, **plan)} if choose else {}
        shapes = [b.ids.shape for b in iterate_batches(sequences, None, batch_size, bucket=bucket, **kwargs, **chosen)]
        out[name] = sum(b * t for b, t in shapes)
        if bucket:
            out["batches"], out["shapes"] = len(shapes), len(set(shapes))
    return out


def prefetch(iterator: Iterable, size: int = 2) -> Iterator:
    """Run `iterator` on a background thread, keeping up to `size` items ready.

    NumPy releases the GIL in its copies, so batching overlaps the model's compute. Exceptions
    in the producer are raised in the consumer; leaving the loop early stops the producer.

    >>> list(prefetch(iter(range(5))))
    [0, 1, 2, 3, 4]
    """
    if size < 1:
        raise LstmkitError(f"prefetch size must be a positive int, got {size}")
    items: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        items.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            error = None
        except BaseException as e:  # handed to the consumer, which re-raises it
            error = e
        while not stop.is_set():
            try:
                items.put((done, error), timeout=0.1)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=produce, name="lstmkit-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = items.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=1.0)


def _round_up(x: int, multiple: int) -> int:
    return -(-x // multiple) * multiple
