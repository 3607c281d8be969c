"""Batch lengths chosen from the data: a few padded lengths that waste the fewest steps.

Shape legend: N texts, K padded lengths (shapes to compile), B batch size.

Every distinct padded length T is one more shape for JAX to compile, and every padded step is
computed for nothing. `bucket_lengths` picks the K lengths that minimise the steps an epoch
computes when each text is padded to the shortest of them that holds it,

    cost(levels) = sum over texts n of min{T in levels : T >= length_n},

exactly, by dynamic programming over the distinct lengths (the optimal levels are always some
of the data's own lengths), and adds a level only while it pays for its compilation. The
"texts" may be weighted: `lstmkit.nn.batches` passes each batch's longest text, weighted by its
rows, so that the lengths fit the batches training actually makes (sorted windows,
`lstmkit.data.batching.plan_batches`).

    >>> bucket_lengths(np.array([3, 3, 4, 10, 10, 11]), max_shapes=2, min_steps=0)
    [4, 11]
"""

from __future__ import annotations

import numpy as np

from lstmkit.errors import LstmkitError

MAX_SHAPES = 8  # compiled shapes at most
MIN_SHARE = 0.01  # a level is added only if it saves at least 1% of the padded steps ...
# ... and at least the padded steps one compilation costs: the default preset's training step
# compiles in 3.5 to 5 s and computes 15 to 17 us per padded step (B x T) on 2 cores, so 200,000
# to 300,000 steps; the lower end is kept (docs/performance.md, "Batch lengths from the data").
COMPILE_STEPS = 200_000


def optimal_levels(lengths: np.ndarray, max_shapes: int, weights=None) -> list[tuple[int, list[int]]]:
    """For k = 1 .. max_shapes, the padded steps and the k lengths that minimise them.

    lengths: (N,) positive ints; weights: (N,) rows each stands for (default 1). Returns
    [(cost_k, levels_k)] with levels ascending, the last always the longest length.
    O(max_shapes x U^2) for U distinct lengths (U <= the model's length).
    """
    values, inverse = np.unique(np.asarray(lengths, np.int64), return_inverse=True)
    counts = np.bincount(inverse, weights=weights).astype(np.int64)
    below = np.concatenate([[0], np.cumsum(counts)])  # below[i]: texts shorter than values[i]
    U = len(values)
    # best[k, i]: least cost of the texts of the first i distinct lengths with k levels, the
    # last level values[i - 1]; came[k, i]: where that last level's group starts.
    best = np.full((max_shapes + 1, U + 1), np.inf)
    came = np.zeros((max_shapes + 1, U + 1), np.int64)
    best[0, 0] = 0.0
    for k in range(1, max_shapes + 1):
        for i in range(k, U + 1):
            start = np.arange(k - 1, i)
            cost = best[k - 1, start] + (below[i] - below[start]) * values[i - 1]
            j = int(np.argmin(cost))
            best[k, i], came[k, i] = cost[j], start[j]
    out = []
    for k in range(1, min(max_shapes, U) + 1):
        levels, i = [], U
        for kk in range(k, 0, -1):
            levels.append(int(values[i - 1]))
            i = came[kk, i]
        out.append((int(best[k, U]), levels[::-1]))
    return out


def bucket_lengths(
    lengths: np.ndarray, weights=None, *, max_shapes: int = MAX_SHAPES, min_steps: int = COMPILE_STEPS
) -> list[int]:
    """The padded lengths for texts of these lengths (`weights`: rows each stands for): at most
    `max_shapes`, ascending.

    Starting from one level (the longest text), a level is added while it saves at least
    `min_steps` padded steps (about what compiling one more shape costs; a caller that reads the
    texts E times passes COMPILE_STEPS / E) and at least MIN_SHARE of the steps: a small corpus
    gets few shapes, a large one up to `max_shapes`.

    >>> bucket_lengths(np.array([5] * 100 + [50]), min_steps=0)
    [5, 50]
    """
    lengths = np.maximum(np.asarray(lengths, np.int64), 1)  # an empty text still takes one step
    if len(lengths) == 0:
        raise LstmkitError("no texts to choose batch lengths from; the dataset is empty")
    if max_shapes < 1:
        raise LstmkitError(f"max_shapes must be a positive int, got {max_shapes}")
    choices = optimal_levels(lengths, max_shapes, weights)
    cost, levels = choices[0]
    for next_cost, next_levels in choices[1:]:
        saving = cost - next_cost
        if saving < min_steps or saving < MIN_SHARE * cost:
            break
        cost, levels = next_cost, next_levels
    return levels
