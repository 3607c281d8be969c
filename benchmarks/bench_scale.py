"""Corpora larger than memory (`lstmkit train --stream`): peak memory, vectorizing time, training throughput.

    python benchmarks/bench_scale.py                                  # 2,000,000 texts (long: see docs/scaling.md)
    python benchmarks/bench_scale.py --texts 200000 --steps 100       # a smaller check

1. Corpus: --texts sentences cut from IMDB's 25,000 train reviews (read by `lstmkit.data.imdb`),
   each with its review's label, drawn with replacement (seeded) and written as one TSV file to a
   scratch folder (--scratch; default a new temporary folder, never inside the repository).
2. Vectorizing: in a fresh process each, the first tenth of the corpus and the whole of it
   streamed into a token file (`lstmkit.data.corpus`, the default preset's vectorizer), then the
   whole opened again from the cache; the time and the process's peak resident memory (VmHWM).
   --in-memory adds the same texts read and vectorized in memory (`load_table`, `adapt`,
   `encode_ragged`), for contrast.
3. Training: `lstmkit train --stream` for two epochs on the corpus's first rows, as many as make
   --steps steps of training per epoch, with 1 and with 2 processes (--processes); texts a second
   over the second epoch (the first one compiles), from history.json, and the peak memory of the
   largest process (getrusage of the children).

The token cache and the runs go to the scratch folder's LSTMKIT_HOME (the built kernel is linked
in from yours). Prints one table; dated figures go to docs/scaling.md.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lstmkit.data.imdb import load_imdb
from lstmkit.paths import lstmkit_home

IMDB = Path(os.environ.get("LSTMKIT_IMDB", Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "imdb"))

VECTORIZE = """
import json, sys, time
from pathlib import Path
import numpy as np
from lstmkit.tasks.classifier import build_model
from lstmkit.tasks.presets import resolve
config = resolve("default")
vectorizer = build_model(config, 2, 1).vectorizer
start = time.perf_counter()
if sys.argv[2] == "memory":
    from lstmkit.data.files import load_table
    texts = load_table(Path(sys.argv[1]), None, None).texts
    vectorizer.adapt(texts)
    ids = vectorizer.encode_ragged(texts, 2500)
    n = len(ids)
else:
    from lstmkit.data.corpus import load_corpus
    corpus = load_corpus(Path(sys.argv[1]), {}, vectorizer, vocabulary_rows=lambda y, c: np.ones(len(y), bool),
                         vocabulary_from="all", max_length=2500, cache_dir=sys.argv[2])
    n = len(corpus.rows)
seconds = time.perf_counter() - start
status = Path("/proc/self/status").read_text()
peak = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) * 1024
print(json.dumps({"texts": n, "seconds": seconds, "peak": peak}))
"""

RUN_MEASURED = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print("maxrss", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)
"""


def sentences_of(texts):
    """Sentences of at least four words, one line each, without tabs or quotes (TSV-safe)."""
    out = []
    for text in texts:
        text = re.sub(r"<br\s*/?>", " ", text).replace("\t", " ").replace('"', "'")
        out.extend(s for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 4)
    return out


def write_corpus(path, n, seed=0):
    """n sentences with their reviews' labels, drawn with replacement, as a TSV file; returns its size."""
    train = load_imdb(IMDB / "aclImdb_labeled.tar.gz", split="train", shuffle=False)
    sentences, labels = [], []
    for text, label in zip(train.texts, train.labels):
        parts = sentences_of([text])
        sentences += parts
        labels += [train.class_names[label]] * len(parts)
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as f:
        f.write("text\tlabel\n")
        for start in range(0, n, 100_000):
            for i in rng.integers(0, len(sentences), min(100_000, n - start)):
                f.write(f"{sentences[i]}\t{labels[i]}\n")
    return len(sentences)


def head_of(path, rows, out):
    with open(path, encoding="utf-8") as f, open(out, "w", encoding="utf-8") as g:
        for _ in range(rows + 1):
            g.write(f.readline())


def vectorize(path, where, env):
    result = subprocess.run(
        [sys.executable, "-c", VECTORIZE, str(path), str(where)], capture_output=True, text=True, env=env, check=False
    )
    if result.returncode:
        sys.exit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def train(data, out, processes, batch_size, flags, env):
    command = [sys.executable, "-m", "lstmkit.cli", "train", "--stream", "--data", str(data), "--out", str(out)]
    command += ["--epochs", "2", "--quiet", "--validation", "0.1", "--batch-size", str(batch_size), *flags]
    if processes > 1:
        command += ["--processes", str(processes)]
    result = subprocess.run([sys.executable, "-c", RUN_MEASURED, *command], capture_output=True, text=True, env=env)
    _, maxrss, code = result.stdout.strip().splitlines()[-1].split()
    if int(code):
        sys.exit(result.stderr[-3000:])
    history = json.loads((Path(out) / "history.json").read_text())
    metrics = json.loads((Path(out) / "metrics.json").read_text()) if (Path(out) / "metrics.json").exists() else {}
    return history["epoch_time"][1], int(maxrss) * 1024, metrics.get("accuracy")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2_000_000, help="texts in the corpus")
    parser.add_argument("--steps", type=int, default=300, help="training steps per epoch in the throughput runs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--processes", default="1,2", help="process counts to train with, comma-separated")
    parser.add_argument("--scratch", default=None, help="folder for the corpus, the cache and the runs")
    parser.add_argument("--in-memory", action="store_true", help="also vectorize the texts in memory, for contrast")
    parser.add_argument("--train-flag", action="append", default=[], help="a flag for lstmkit train (repeatable)")
    args = parser.parse_args()
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="lstmkit-scale-"))
    home = scratch / "home"
    home.mkdir(parents=True, exist_ok=True)
    if (lstmkit_home() / "kernels").is_dir() and not (home / "kernels").exists():
        (home / "kernels").symlink_to(lstmkit_home() / "kernels")  # not built again
    env = {**os.environ, "LSTMKIT_HOME": str(home)}
    print(f"scratch: {scratch}", flush=True)

    corpus, tenth = scratch / f"corpus-{args.texts}.tsv", scratch / f"corpus-{args.texts // 10}.tsv"
    start = time.perf_counter()
    n_sentences = write_corpus(corpus, args.texts)
    head_of(corpus, args.texts // 10, tenth)
    print(
        f"corpus: {args.texts:,} texts drawn from {n_sentences:,} IMDB train sentences, "
        f"{corpus.stat().st_size / 2**20:.0f} MiB ({time.perf_counter() - start:.0f} s)",
        flush=True,
    )
    rows = []
    for path, n in ((tenth, args.texts // 10), (corpus, args.texts)):
        built = vectorize(path, home / "token-files", env)
        rows.append((f"vectorize {n:,} texts, streamed", built["seconds"], built["peak"]))
        if args.in_memory:
            held = vectorize(path, "memory", env)
            rows.append((f"vectorize {n:,} texts, in memory", held["seconds"], held["peak"]))
    cached = vectorize(corpus, home / "token-files", env)
    rows.append((f"open {args.texts:,} texts from the cache", cached["seconds"], cached["peak"]))
    for label, seconds, peak in rows:
        print(f"{label:<44} {seconds:8.1f} s   peak {peak / 2**20:7.0f} MiB", flush=True)

    # Train rows = 80% (test held out) x 90% (validation) of the head: enough for --steps steps.
    n_head = math.ceil(args.steps * args.batch_size / (0.8 * 0.9))
    head = scratch / f"head-{n_head}.tsv"
    head_of(corpus, n_head, head)
    n_train = round(round(n_head * 0.8) * 0.9)
    for processes in (int(p) for p in args.processes.split(",")):
        epoch, peak, accuracy = train(
            head, scratch / f"run-p{processes}", processes, args.batch_size, args.train_flag, env
        )
        print(
            f"train, {processes} process{'es' * (processes > 1)}: {n_train:,} texts ({args.steps} steps of {args.batch_size}) "
            f"in {epoch:.1f} s = {n_train / epoch:,.0f} texts/s (second epoch); peak {peak / 2**20:.0f} MiB; "
            f"test accuracy {accuracy}",
            flush=True,
        )


if __name__ == "__main__":
    main()
