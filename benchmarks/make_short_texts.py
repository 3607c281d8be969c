"""A short-text corpus built offline from IMDB: each review's first sentence, with its label.

The `default` preset is chosen on IMDB's long reviews (230 words on average); this corpus checks
that it stays good on short texts (about 20 words), the kind of data many users have: titles,
tweets, support tickets. The test sentences come from the test reviews only (other movies).

    python benchmarks/make_short_texts.py --out runs/short        # writes train.csv, test.csv
    lstmkit train --data runs/short/train.csv --test-data runs/short/test.csv --preset default --out runs/short-default

Nothing is written into the repository; `--imdb` (or LSTMKIT_IMDB) points at the archive's folder.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
from pathlib import Path

from lstmkit.data.imdb import read_imdb

# The end of the first sentence: . ! or ? (runs of them too), then a space or the end. "<br />"
# line breaks end a sentence as well.
SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s|<br\s*/?>", re.IGNORECASE)
MIN_WORDS = 3  # shorter first "sentences" ("Wow." "10/10.") are mostly noise or ratings


def first_sentence(review: str) -> str:
    """The review's first sentence, whitespace collapsed.

    >>> first_sentence("A fine film. The cast is great!")
    'A fine film.'
    >>> first_sentence("No full stop here<br /><br />then more")
    'No full stop here'
    """
    head = SENTENCE_END.split(review.strip(), maxsplit=1)[0]
    return " ".join(head.split())


def short_rows(dataset):
    """(text, label name) for every review whose first sentence has at least MIN_WORDS words."""
    for text, label in zip(dataset.texts, dataset.labels):
        sentence = first_sentence(text)
        if len(sentence.split()) >= MIN_WORDS:
            yield sentence, dataset.class_names[int(label)]


def write_csv(path: Path, rows) -> int:
    part = path.with_suffix(".csv.part")
    n = 0
    with open(part, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for row in rows:
            writer.writerow(row)
            n += 1
    os.replace(part, path)
    return n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder to write train.csv and test.csv into")
    parser.add_argument(
        "--imdb", default=os.environ.get("LSTMKIT_IMDB", "../shared/data/imdb"), help="folder of the IMDB archive"
    )
    args = parser.parse_args(argv)
    source = Path(args.imdb)
    archive = source / "aclImdb_labeled.tar.gz" if source.is_dir() else source
    if not archive.exists():
        print(f"error: no IMDB archive at {archive}; pass --imdb FOLDER (or set LSTMKIT_IMDB)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    splits = read_imdb(archive, splits=("train", "test"), seed=0)
    for split, dataset in splits.items():
        n = write_csv(args.out / f"{split}.csv", short_rows(dataset))
        words = [len(first_sentence(t).split()) for t in dataset.texts]
        kept = [w for w in words if w >= MIN_WORDS]
        print(
            f"{split}: {n:,} of {len(dataset.texts):,} reviews, first sentence {sum(kept) / len(kept):.1f} words on average"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
