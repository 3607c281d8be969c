"""Batch lengths chosen from the data: few shapes, little padding, the same batches as before."""

import itertools

import numpy as np
import pytest

from lstmkit.data.batching import bucket_lengths, iterate_batches, plan_batches

MAX_LENGTH = 800


def corpus(name, n=6000, seed=0):
    """Lengths (n,) of a synthetic corpus, clipped to [1, MAX_LENGTH]."""
    rng = np.random.default_rng(seed)
    lengths = {
        "all short": lambda: rng.normal(10, 3, n),  # sentences with a sequence length of 800
        "all long": lambda: rng.normal(700, 60, n),
        "bimodal": lambda: np.concatenate([rng.integers(5, 20, n // 2), rng.integers(300, 801, n - n // 2)]),
        "heavy-tailed": lambda: rng.lognormal(3.0, 0.35, n),  # median 20, a tail to 3.5x that (see docs)
        "one length": lambda: np.full(n, 37),
    }[name]()
    return np.clip(np.round(lengths), 1, MAX_LENGTH).astype(np.int64)


def epoch(lengths, batch_size, pad_lengths, seed, **kwargs):
    """(index, T) of each bucketed batch of one epoch over sequences of these lengths."""
    sequences = [np.ones(n, np.int32) for n in lengths]
    batches = iterate_batches(
        sequences, None, batch_size, seed=seed, max_length=MAX_LENGTH, pad_lengths=pad_lengths, **kwargs
    )
    return [(b.index, b.ids.shape[1]) for b in batches]


@pytest.mark.parametrize("batch_size", [64, 256])
@pytest.mark.parametrize("name", ["all short", "all long", "bimodal", "heavy-tailed", "one length"])
def test_padded_steps_stay_within_15_percent_of_real_tokens_with_at_most_8_shapes(name, batch_size):
    """Over two epochs of other seeds than the lengths were chosen on: sum over real rows of their
    batch's T, divided by the real tokens, is at most 1.15; at most 8 distinct T; every row fits."""
    lengths = corpus(name)
    allowed = bucket_lengths(lengths, batch_size)
    assert allowed == sorted(set(allowed)) and len(allowed) <= 8 and allowed[-1] == lengths.max()
    for seed in (101, 202):
        batches = epoch(lengths, batch_size, allowed, seed)
        padded = sum(t * int((index >= 0).sum()) for index, t in batches)
        assert padded / lengths.sum() <= 1.15, (name, batch_size, allowed)
        assert len({t for _, t in batches}) <= 8
        assert all(t >= lengths[index[index >= 0]].max() for index, t in batches)


def test_all_short_sentences_no_longer_compute_a_quarter_of_the_sequence_length():
    """10-token sentences with a sequence length of 800: T was 200 (a multiple of 800 / 4)."""
    lengths = corpus("all short")
    before = {t for _, t in epoch(lengths, 64, None, 1, pad_multiple=200)}
    after = {t for _, t in epoch(lengths, 64, bucket_lengths(lengths, 64), 1)}
    assert before == {200}
    assert max(after) == lengths.max() < 40


@pytest.mark.parametrize("name", ["bimodal", "heavy-tailed"])
def test_the_batches_are_the_same_only_their_length_changes(name):
    """Which examples make up each batch, in which order, does not depend on the lengths: the
    training results stay those of the quarter-length padding up to float rounding."""
    lengths = corpus(name, n=3000)
    for seed in (0, 7):
        before = epoch(lengths, 64, None, seed, pad_multiple=200)
        after = epoch(lengths, 64, bucket_lengths(lengths, 64), seed)
        assert len(before) == len(after)
        assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(before, after))
        assert sum(t for _, t in after) < sum(t for _, t in before)


def test_the_chosen_lengths_are_the_best_subset_found_by_exhaustive_search():
    """With target_ratio 1.0 (use every shape allowed), the padded steps of the chosen 3 lengths
    equal the minimum over every subset of at most 3 batch maxima that holds the longest."""
    lengths = np.random.default_rng(3).integers(1, 30, 400)  # <= 32: no rounding of candidates
    plan = plan_batches(lengths, 16, shuffle=False, bucket=True, bucket_window=4)
    needs = [int(lengths[p[p >= 0]].max()) for p in plan]
    rows = [int((p >= 0).sum()) for p in plan]

    def cost(allowed):
        return sum(r * min(a for a in allowed if a >= n) for n, r in zip(needs, rows))

    top = max(needs)
    others = sorted(set(needs) - {top})
    best = min(cost([*c, top]) for k in range(3) for c in itertools.combinations(others, k))
    chosen = bucket_lengths(lengths, 16, bucket_window=4, shuffle=False, max_shapes=3, target_ratio=1.0)
    assert len(chosen) == 3 and cost(chosen) == best


def test_fewer_shapes_when_they_are_enough():
    """Two lengths only: two shapes, whatever the limit."""
    lengths = np.array([12] * 1000 + [300] * 1000)
    assert bucket_lengths(lengths, 64, max_shapes=8) == [12, 300]


def test_inference_lengths_come_from_the_texts_being_read():
    """Prediction's batches (unshuffled, one window) get at most 8 lengths chosen from its texts:
    with 8 batches, each its own longest row (within the 1/32 rounding of candidates)."""
    from lstmkit.nn.batches import inference_pad_lengths

    lengths = corpus("bimodal", n=2000)
    ids = [np.ones(n, np.int32) for n in lengths]
    allowed = inference_pad_lengths(ids, 256, len(ids) // 256 + 1, MAX_LENGTH)
    batches = list(
        iterate_batches(ids, None, 256, shuffle=False, bucket_window=len(ids) // 256 + 1, pad_lengths=allowed)
    )
    assert len(batches) == 8 and len(allowed) <= 8 and allowed[-1] == lengths.max()
    for b in batches:
        longest = int(lengths[b.index[b.index >= 0]].max())
        assert longest <= b.ids.shape[1] <= longest * 33 / 32
