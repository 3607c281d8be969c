"""Padded steps an epoch computes over the real tokens, for each way of choosing batch lengths.

Reads a corpus (IMDB's archive or folder, or a CSV with a `text` column), vectorizes it as the
default preset does (10,000 tokens, --sequence-length), and counts B x T over one epoch's
training batches (filler rows included) against the tokens, for:
- quarters of the length: every batch padded to a multiple of L / 4 (lstmkit before 2026-12-07);
- quarters of the data's longest text, when shorter than L (commit 1ac6887);
- lengths from the data: at most 8, each paying for its compilation over --epochs, chosen from
  the batches' longest texts (`lstmkit.data.batching.batch_lengths`, what `lstmkit train` does now);
- each batch padded to exactly its longest text (as many shapes as lengths): what the batches'
  mixing of lengths costs on its own;
- the least padding any 8 lengths allow for texts padded one by one (no batches): the bound.

    python benchmarks/bench_lengths.py --data runs/short/train.csv
    python benchmarks/bench_lengths.py --data ../shared/data/imdb/aclImdb_labeled.tar.gz
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np

from lstmkit.data.batching import batch_lengths, iterate_batches, sequence_lengths
from lstmkit.data.imdb import is_imdb, load_imdb
from lstmkit.data.lengths import optimal_levels
from lstmkit.data.text import TextVectorizer
from lstmkit.nn.batches import pad_multiple


def read_texts(path: Path) -> list[str]:
    if is_imdb(path):
        return list(load_imdb(path, "train").texts)
    with open(path, newline="", encoding="utf-8") as f:
        return [row["text"] for row in csv.DictReader(f)]


def epoch_steps(ids, batch_size, length, **how) -> tuple[int, int]:
    """(padded steps B x T summed over one epoch's batches, distinct T)."""
    shapes = [b.ids.shape for b in iterate_batches(ids, None, batch_size, seed=1, max_length=length, **how)]
    return sum(b * t for b, t in shapes), len({t for _, t in shapes})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--sequence-length", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2, help="the run's epochs (the default preset's: 2)")
    args = parser.parse_args()
    L, B = args.sequence_length, args.batch_size

    texts = read_texts(args.data)
    vectorizer = TextVectorizer(max_tokens=10000, output_sequence_length=L)
    vectorizer.adapt(texts)
    ids = vectorizer.encode_ragged(texts)
    lengths = np.minimum(sequence_lengths(ids), L)
    real = int(lengths.sum())
    print(
        f"{args.data}: {len(texts):,} texts, {real:,} tokens at length {L}; median {np.median(lengths):.0f}, "
        f"p99 {np.percentile(lengths, 99):.0f}, longest {lengths.max()}"
    )

    longest = int(lengths.max())
    levels = batch_lengths(lengths, B, passes=args.epochs)
    rows = {
        f"quarters of {L}": dict(pad_multiple=pad_multiple(L)),
        f"quarters of the longest text ({longest})": dict(pad_multiple=pad_multiple(min(L, longest))),
        f"lengths from the data, {args.epochs} epochs: {levels}": dict(pad_lengths=levels),
        "each batch at exactly its longest text": dict(pad_multiple=1),
    }
    for name, how in rows.items():
        steps, shapes = epoch_steps(ids, B, L, **how)
        print(f"  {name}: {steps / real:.3f} steps per token, {shapes} shapes")
    bound, best = optimal_levels(lengths, 8)[-1]
    print(f"  the least any 8 lengths allow, texts padded one by one: {bound / real:.3f} ({best})")


if __name__ == "__main__":
    main()
