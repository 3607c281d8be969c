"""Batching: every example once per epoch, fixed batch rows, few shapes, masks, buffered shuffle."""

import threading
import time

import numpy as np
import pytest

from lstmkit.data.batching import (
    Batch,
    iterate_batches,
    make_batch,
    padded_steps,
    plan_batches,
    plan_ladder,
    prefetch,
    sequence_lengths,
    shuffle_order,
)
from lstmkit.errors import LstmkitError


def ragged(n, seed=0, max_len=50):
    """n sequences; sequence i starts with id i + 1 (so rows can be traced back) then random ids."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_len, n)
    return [np.concatenate([[i + 1], rng.integers(1, 1000, l - 1)]).astype(np.int32) for i, l in enumerate(lengths)]


def collect(batches, sequences):
    """Check each batch against the data; return the ids of the real rows seen, in order."""
    seen = []
    for b in batches:
        assert (
            isinstance(b, Batch) and b.ids.dtype == np.int32 and b.mask.dtype == bool and b.weight.dtype == np.float32
        )
        for row, w in enumerate(b.weight):
            length = int(b.mask[row].sum())
            assert b.mask[row, :length].all() and not b.mask[row, length:].any()  # mask is a prefix
            assert not b.ids[row, length:].any()
            k = int(b.ids[row, 0]) - 1
            assert b.ids[row, :length].tolist() == sequences[k][:length].tolist()
            assert b.labels[row] == k % 3
            if w == 1.0:
                seen.append(k)
            else:
                assert w == 0.0
    return seen


@pytest.mark.parametrize("bucket", [True, False])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("buffer", [None, 7])
def test_epoch_has_every_example_exactly_once(bucket, shuffle, buffer):
    seqs = ragged(203)
    labels = np.arange(203) % 3
    batches = list(
        iterate_batches(
            seqs,
            labels,
            16,
            seed=4,
            shuffle=shuffle,
            bucket=bucket,
            shuffle_buffer=buffer,
            bucket_window=3,
            pad_multiple=8,
        )
    )
    assert all(b.ids.shape[0] == 16 for b in batches) and len(batches) == 13
    assert all(b.ids.shape[1] % 8 == 0 for b in batches) or not bucket
    seen = collect(batches, seqs)
    assert sorted(seen) == list(range(203))
    assert sum(b.weight.sum() for b in batches) == 203


def test_filler_rows_are_copies_with_weight_zero():
    seqs = ragged(5)
    (b,) = iterate_batches(seqs, np.arange(5) % 3, 8, shuffle=False, bucket=False)
    assert b.weight.tolist() == [1] * 5 + [0] * 3
    assert b.mask.sum(axis=1).min() >= 1  # no all-padding row: a time mean never divides by 0


@pytest.mark.parametrize("padded", [False, True])
def test_a_gathered_shard_holds_the_full_batchs_rows_and_only_those(padded):
    """Across processes each reads only its rows (`gather`): those rows, and the shapes, labels and
    weights of every row, are the full batch's; the other rows' ids are left as padding."""
    seqs = ragged(21)
    if padded:
        seqs = np.stack([np.pad(s, (0, 60 - len(s))) for s in seqs]).astype(np.int32)
    labels, kw = np.arange(21) % 3, dict(seed=5, pad_multiple=4, bucket_window=2)
    for full, shard in zip(
        iterate_batches(seqs, labels, 8, **kw), iterate_batches(seqs, labels, 8, gather=slice(4, 8), **kw)
    ):
        assert shard.ids.shape == full.ids.shape
        np.testing.assert_array_equal(shard.ids[4:], full.ids[4:])
        np.testing.assert_array_equal(shard.mask[4:], full.mask[4:])
        assert not shard.ids[:4].any() and not shard.mask[:4].any()
        for name in ("labels", "weight", "index"):
            np.testing.assert_array_equal(getattr(shard, name), getattr(full, name))


def test_drop_remainder():
    seqs = ragged(21)
    batches = list(iterate_batches(seqs, np.arange(21) % 3, 8, drop_remainder=True))
    assert len(batches) == 2 and all(b.weight.all() for b in batches)
    with pytest.raises(LstmkitError, match="lower batch_size"):
        list(iterate_batches(seqs, None, 32, drop_remainder=True))


def test_bucketing_pads_less_and_uses_few_shapes():
    seqs = ragged(2000, max_len=300)
    windows = padded_steps(seqs, 32, pad_multiple=16, bucket_window=20, pad_lengths=None)  # sorted windows
    assert windows["real"] < windows["bucketed"] < 0.7 * windows["plain"]
    assert windows["shapes"] <= 300 // 16 + 1
    chosen = padded_steps(seqs * 20, 32)  # 40,000 texts: lengths from the data pay for their shapes
    assert chosen["real"] < chosen["bucketed"] < 0.7 * chosen["plain"] and 1 < chosen["shapes"] <= 8


def test_plain_mode_has_fixed_length_and_truncates():
    seqs = ragged(50, max_len=40)
    batches = list(iterate_batches(seqs, None, 8, bucket=False, max_length=20))
    assert {b.ids.shape for b in batches} == {(8, 20)}
    assert max(b.mask.sum(axis=1).max() for b in batches) == 20
    assert all(b.labels.tolist() == [0] * 8 for b in batches)


def test_padded_array_input_matches_ragged():
    seqs = ragged(40)
    padded = np.zeros((40, 60), np.int32)
    for i, s in enumerate(seqs):
        padded[i, : len(s)] = s
    assert sequence_lengths(padded).tolist() == [len(s) for s in seqs]
    kwargs = dict(seed=2, pad_multiple=4, bucket_window=2)
    for a, b in zip(
        iterate_batches(seqs, np.arange(40) % 3, 8, **kwargs), iterate_batches(padded, np.arange(40) % 3, 8, **kwargs)
    ):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    (plain,) = iterate_batches(padded, None, 64, bucket=False)
    assert plain.ids.shape == (64, 60)


def test_seeds_give_reproducible_different_orders():
    lengths = np.arange(100) % 17
    a = plan_batches(lengths, 10, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, plan_batches(lengths, 10, seed=1)))
    assert not all(np.array_equal(x, y) for x, y in zip(a, plan_batches(lengths, 10, seed=2)))


def test_shuffle_buffer_emulates_tf_data():
    rng = np.random.default_rng(0)
    assert shuffle_order(10, rng, buffer_size=1).tolist() == list(range(10))  # buffer 1: no shuffle
    order = shuffle_order(1000, np.random.default_rng(0), buffer_size=10)
    assert sorted(order.tolist()) == list(range(1000))
    # Item k cannot come out before position k - buffer_size + 1: a small buffer stays nearly sorted.
    assert np.all(np.argsort(order) >= np.arange(1000) - 9)
    # Class-sorted labels through a small buffer give batches of one label (the IMDB trap).
    labels = np.repeat([0, 1], 500)
    first = labels[order[:100]]
    assert first.mean() == 0.0


def test_make_batch_cuts_to_length():
    b = make_batch([np.array([1, 2, 3, 4])], None, np.array([0]), 2)
    assert b.ids.tolist() == [[1, 2]] and b.mask.tolist() == [[True, True]]


def test_errors():
    with pytest.raises(LstmkitError, match="labels"):
        list(iterate_batches(ragged(3), np.zeros(2), 2))
    with pytest.raises(LstmkitError, match="empty"):
        list(iterate_batches([], None, 2))
    with pytest.raises(LstmkitError):
        list(iterate_batches(ragged(3), None, 0))


def test_prefetch_runs_ahead_and_propagates_errors():
    produced = []

    def slow():
        for i in range(5):
            produced.append(i)
            yield i

    it = prefetch(slow(), size=2)
    assert next(it) == 0
    time.sleep(0.2)
    assert len(produced) >= 3  # the thread filled the queue while we slept
    assert list(it) == [1, 2, 3, 4]

    def broken():
        yield 1
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(prefetch(broken()))


def test_prefetch_stops_when_abandoned():
    before = threading.active_count()
    it = prefetch(iter(range(10**6)), size=2)
    next(it)
    it.close()
    time.sleep(0.3)
    assert threading.active_count() <= before


def test_imdb_bucketing_savings(imdb_labeled):
    """How many padded steps bucketing saves on IMDB at length 200, batch 64 (printed with -s)."""
    from lstmkit.data.imdb import load_imdb
    from lstmkit.data.text import TextVectorizer

    texts = load_imdb(imdb_labeled, "train").texts
    v = TextVectorizer(max_tokens=20000, output_sequence_length=200)
    v.adapt(texts)
    steps = padded_steps(v.encode_ragged(texts), 64, passes=5, max_length=200, seed=0)  # the seed preset's 5 epochs
    saved = 1 - steps["bucketed"] / steps["plain"]
    padding_saved = 1 - (steps["bucketed"] - steps["real"]) / (steps["plain"] - steps["real"])
    print(
        f"\nIMDB train, length 200, batch 64: plain {steps['plain']:,} steps, bucketed {steps['bucketed']:,} ({saved:.1%} fewer; {padding_saved:.0%} of the padding gone), real {steps['real']:,}, {steps['shapes']} shapes"
    )
    assert steps["plain"] == 391 * 64 * 200
    # 5 shapes chosen for 5 epochs save 15.5%; 10 shapes (multiples of 16) saved 17.0%
    assert saved > 0.10 and steps["shapes"] <= 8


def test_pad_lengths_pick_the_shortest_that_fits():
    rng = np.random.default_rng(0)
    seqs = [np.ones(n, np.int32) for n in rng.integers(1, 900, 300)]
    allowed = [100, 200, 400, 800, 1000]
    seen = 0
    for b in iterate_batches(
        seqs, None, 16, shuffle=False, bucket=True, bucket_window=100, pad_lengths=allowed, max_length=1000
    ):
        longest = int(b.mask.sum(1).max())
        t = b.ids.shape[1]
        assert t in allowed and t >= longest
        assert t == allowed[0] or allowed[allowed.index(t) - 1] < longest  # the shortest that fits
        seen += int(b.weight.sum())
    assert seen == 300


def test_long_inference_batches_are_split_to_the_token_budget():
    from lstmkit.nn.batches import split_long

    rng = np.random.default_rng(0)
    seqs = [np.ones(n, np.int32) for n in rng.integers(1, 1000, 300)]
    batches = iterate_batches(
        seqs,
        None,
        64,
        shuffle=False,
        bucket=True,
        bucket_window=100,
        pad_lengths=[100, 200, 400, 800, 1000],
        max_length=1000,
    )
    seen, shapes = [], set()
    for b in split_long(batches, 64 * 200):
        assert b.ids.shape[0] * b.ids.shape[1] <= 64 * 200 or b.ids.shape[1] <= 200
        assert np.all(b.weight[b.index < 0] == 0) and np.all(b.weight[b.index >= 0] == 1)
        seen += b.index[b.index >= 0].tolist()
        shapes.add(b.ids.shape)
    assert sorted(seen) == list(range(300))  # every row once, none lost to the split
    assert {t: r for r, t in shapes} == {400: 32, 800: 16, 1000: 12}  # rows = 64 * 200 // T


@pytest.mark.parametrize("seed", range(4))
def test_a_servers_ladder_batches_hold_every_text_once_in_its_shape_and_pad_little(seed):
    """plan_ladder: every text once, each batch of a compiled shape (rows and T from the ladders),
    each text no longer than its batch's T (unless longer than the last), and fewer steps than
    padding the whole request to its longest text, as the server did before."""
    rng = np.random.default_rng(seed)
    lengths = np.concatenate([rng.integers(1, 300, 40), rng.integers(300, 2500, 4)])[: rng.integers(1, 45)]
    rows_ladder, t_ladder = [1, 4, 16, 64], [16, 32, 64, 128, 256, 512, 1024, 2048, 2500]
    plan = plan_ladder(lengths, rows_ladder, t_ladder)
    held = np.concatenate([index for index, _ in plan])
    assert sorted(held[held >= 0].tolist()) == list(range(len(lengths)))
    for index, t in plan:
        assert len(index) in rows_ladder and t in t_ladder
        real = index[index >= 0]
        assert len(real) and (lengths[real] <= t).all()
        assert (index[len(real) :] == -1).all()  # filler rows only at the end
    whole = next(r for r in rows_ladder if r >= len(lengths)) * next(t for t in t_ladder if t >= lengths.max())
    assert sum(len(index) * t for index, t in plan) <= whole
