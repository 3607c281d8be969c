"""Side-by-side training benchmark: lstmkit against Keras 3 (TensorFlow and JAX) and PyTorch.

    python benchmarks/bench_train.py --predict            # all four, 3 alternating rounds
    python benchmarks/bench_train.py --only keras-jax,torch --batches 20 --rounds 1

The harness prepares the data once: the IMDB train reviews, vectorized as in the seed notebook
(vocabulary of 100 ids including padding 0 and [UNK] 1, length 200, right padded/truncated,
int32) with `lstmkit.data.text.TextVectorizer`, saved to an npz in a temporary directory. Then it
runs every framework in a subprocess of its own, so peak RSS is the framework's alone and the
Keras backend is chosen by KERAS_BACKEND. Frameworks alternate within each of --rounds rounds
(the order rotates every round), so a slow spell of a shared machine hits them all alike.

Worker protocol (version 1)
---------------------------
A worker is `benchmarks/workers/<name>_worker.py`, run as

    python WORKER --data DATA.npz --batches N --warmup W [--batch-size 64] [--predict]
                  [--predict-batches P] [--predict-batch-size 256] [--full-epoch] [--seed 0]

`workers/protocol.py` parses exactly these options and holds the helpers below; use it.

- DATA.npz holds `x` (N_reviews, 200) int32 token ids, 0 = padding at the end, and `y`
  (N_reviews,) int32 labels in {0, 1}, shuffled once (seed 0). Nothing else is needed.
- Training: the seed's model (Embedding(100, 64, mask_zero) -> BiLSTM(64) -> Dense(64, relu)
  -> Dense(1, sigmoid), Adam, binary cross-entropy) at --batch-size, trained from fresh weights
  on the batches `protocol.training_batch_starts(N_reviews, B, W + N)`: the first W batches in
  data order are warmup (compile), the next N are timed one by one. A step's time ends only when
  its update has finished (block on the loss or the parameters): no asynchronous dispatch may
  leak into the next step's time.
- --full-epoch: then one real epoch over all reviews in data order, the last batch partial
  (391 batches for 25 000 reviews), timed end to end, as the user would run it.
- --predict: predict P batches of --predict-batch-size reviews (probabilities), after one
  untimed warmup batch; report reviews per second.
- Output: one JSON line, the last line on stdout (`protocol.emit` writes it), with keys
    protocol              1
    framework             'lstmkit' | 'keras-tf' | 'keras-jax' | 'torch'
    versions              {library: version}, including python and numpy
    threads               compute threads the worker set, or null for the library's default
    batch_size            B
    warmup_ms             [W floats]: the warmup steps, the first includes compilation
    step_ms               [N floats]: the timed steps
    ms_per_batch          median of step_ms
    epoch_batches         batches in one epoch (391)
    epoch_s               measured full epoch in seconds, or null without --full-epoch
    predict_batch_size    P's batch size, or null without --predict
    predict_reviews_per_s prediction throughput, or null without --predict
    peak_rss_mib          resource.getrusage(RUSAGE_SELF).ru_maxrss in MiB, at the end
    final_loss            the last training loss (a sanity check that it trained)
    notes                 one line on what was measured
    extra                 {any framework-specific numbers}
- Exit status 0 with that line; 3 (`protocol.unavailable(message)`) when the framework is not
  importable, with a one-line message on stderr: the harness prints it and skips the framework;
  anything else is a failure, reported with the tail of stderr.

Report: per framework the median ms per training batch over all timed batches of all rounds,
the epoch time (measured with --full-epoch, else median x 391 marked "est."), the peak RSS (max
over rounds), the prediction throughput (median over rounds), and each as a ratio to lstmkit:
peer cost / lstmkit cost, so lstmkit = 1.0 and 3.0 means the peer takes 3x lstmkit's time
(or per-review prediction time, or memory).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstmkit.data.text import TextVectorizer

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKERS_DIR = Path(__file__).resolve().parent / "workers"
EXIT_UNAVAILABLE = 3
MAX_TOKENS, SEQ_LEN, SEED = 100, 200, 0


@dataclass(frozen=True)
class Framework:
    name: str
    script: str
    env: dict = field(default_factory=dict)
    is_peer: bool = True


FRAMEWORKS = {
    "lstmkit": Framework("lstmkit", "lstmkit_worker.py", is_peer=False),
    "keras-tf": Framework("keras-tf", "keras_worker.py", {"KERAS_BACKEND": "tensorflow"}),
    "keras-jax": Framework("keras-jax", "keras_worker.py", {"KERAS_BACKEND": "jax"}),
    "torch": Framework("torch", "torch_worker.py"),
}


# ---- data -----------------------------------------------------------------------------------


def find_imdb(explicit: str | None) -> Path:
    """The directory (or archive) of IMDB: --imdb, else $LSTMKIT_IMDB, else ../shared/data/imdb."""
    candidate = explicit or os.environ.get("LSTMKIT_IMDB") or REPO_ROOT.parent / "shared/data/imdb"
    path = Path(candidate)
    if not path.exists():
        sys.exit(
            f"IMDB not found at {path}: pass --imdb DIR or set LSTMKIT_IMDB to the folder "
            "holding aclImdb_labeled.tar.gz"
        )
    return path


def load_train_reviews(imdb: Path) -> tuple[list[str], np.ndarray, str]:
    """The 25 000 IMDB train reviews and labels (1 = positive), shuffled with seed 0."""
    from lstmkit.data.imdb import load_imdb

    data = load_imdb(imdb, split="train", seed=SEED)
    return list(data.texts), np.asarray(data.labels, dtype=np.int32), "lstmkit.data.imdb.load_imdb"


def vectorize(texts: list[str]) -> tuple[np.ndarray, list[str]]:
    """Token ids (N, 200) int32 and the vocabulary, as the seed's TextVectorization makes them."""
    vectorizer = TextVectorizer(max_tokens=MAX_TOKENS, output_sequence_length=SEQ_LEN)
    vectorizer.adapt(texts)
    return np.asarray(vectorizer(texts), dtype=np.int32), list(vectorizer.vocabulary)


def prepare_data(imdb: Path, out_dir: Path) -> tuple[Path, dict]:
    t0 = time.perf_counter()
    texts, labels, loader = load_train_reviews(imdb)
    ids, vocab = vectorize(texts)
    if ids.shape != (len(labels), SEQ_LEN) or len(vocab) != MAX_TOKENS:
        sys.exit(f"expected ids ({len(labels)}, {SEQ_LEN}) and {MAX_TOKENS} tokens, got {ids.shape} and {len(vocab)}")
    path = out_dir / "imdb_train_ids.npz"
    np.savez(path, x=ids, y=labels)
    lengths = (ids != 0).sum(axis=1)
    info = {
        "reviews": len(labels),
        "positive": int(labels.sum()),
        "loader": loader,
        "vectorizer": "lstmkit.data.text.TextVectorizer",
        "mean_length": float(lengths.mean()),
        "full_length_share": float((lengths == SEQ_LEN).mean()),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return path, info


# ---- running workers ------------------------------------------------------------------------


def worker_command(framework: Framework, python: str, data: Path, args) -> list[str]:
    command = [
        python,
        str(WORKERS_DIR / framework.script),
        "--data",
        str(data),
        "--batches",
        str(args.batches),
        "--warmup",
        str(args.warmup),
        "--predict-batches",
        str(args.predict_batches),
    ]
    if args.predict:
        command.append("--predict")
    if args.full_epoch:
        command.append("--full-epoch")
    return command


def run_worker(framework: Framework, python: str, data: Path, args) -> tuple[str, dict | str]:
    """('ok', result) | ('skip', message) | ('fail', message)."""
    env = {
        **os.environ,
        **framework.env,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "JAX_PLATFORMS": "cpu",
        "CUDA_VISIBLE_DEVICES": "",
    }  # a CPU benchmark, even on a machine with a GPU
    command = worker_command(framework, python, data, args)
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return "fail", f"timed out after {args.timeout} s"
    if proc.returncode == EXIT_UNAVAILABLE:
        lines = proc.stderr.strip().splitlines()
        return "skip", lines[-1] if lines else "unavailable"
    json_lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not json_lines:
        tail = "\n    ".join(proc.stderr.strip().splitlines()[-8:])
        return "fail", f"exit status {proc.returncode}\n    {tail}"
    return "ok", json.loads(json_lines[-1])


# ---- summary --------------------------------------------------------------------------------


def summarize(results: list[dict], full_epoch: bool) -> dict:
    """Pool one framework's rounds: median step over all timed steps, max RSS, median rest."""
    steps = [t for r in results for t in r["step_ms"]]
    ms = statistics.median(steps)
    epochs = [r["epoch_s"] for r in results if r.get("epoch_s") is not None]
    predict = [r["predict_reviews_per_s"] for r in results if r.get("predict_reviews_per_s")]
    epoch_batches = results[0]["epoch_batches"]
    return {
        "ms_per_batch": ms,
        "ms_p25": float(np.percentile(steps, 25)),
        "ms_p75": float(np.percentile(steps, 75)),
        "round_medians": [r["ms_per_batch"] for r in results],
        "timed_batches": len(steps),
        "epoch_s": statistics.median(epochs) if full_epoch and epochs else ms * epoch_batches / 1e3,
        "epoch_estimated": not (full_epoch and epochs),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in results),
        "predict_reviews_per_s": statistics.median(predict) if predict else None,
        "first_warmup_ms": statistics.median(r["warmup_ms"][0] for r in results),
        "versions": results[0]["versions"],
        "final_loss": results[-1]["final_loss"],
        "extra": results[-1].get("extra", {}),
    }


def ratio(value, reference) -> str:
    return f"{value / reference:.2f}" if value and reference else "n/a"


def table(summary: dict) -> str:
    ref = summary.get("lstmkit")
    lines = [
        "| framework | ms/batch median [p25-p75] | epoch (s) | peak RSS (MiB) | predict (reviews/s) "
        "| train time vs lstmkit | predict time vs lstmkit | RSS vs lstmkit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        epoch = f"{s['epoch_s']:.1f}" + (" est." if s["epoch_estimated"] else "")
        predict = f"{s['predict_reviews_per_s']:.0f}" if s["predict_reviews_per_s"] else "-"
        per_review = (1 / s["predict_reviews_per_s"]) if s["predict_reviews_per_s"] else None
        ref_per_review = (1 / ref["predict_reviews_per_s"]) if ref and ref["predict_reviews_per_s"] else None
        lines.append(
            f"| {name} | {s['ms_per_batch']:.1f} [{s['ms_p25']:.0f}-{s['ms_p75']:.0f}] | {epoch} "
            f"| {s['peak_rss_mib']:.0f} | {predict} "
            f"| {ratio(s['epoch_s'], ref and ref['epoch_s'])} "
            f"| {ratio(per_review, ref_per_review)} "
            f"| {ratio(s['peak_rss_mib'], ref and ref['peak_rss_mib'])} |"
        )
    return "\n".join(lines)


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def lstmkit_version() -> str:
    try:
        import lstmkit

        return lstmkit.__version__
    except ImportError:
        return "not importable"


# ---- main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default=",".join(FRAMEWORKS), help=f"comma-separated subset of {','.join(FRAMEWORKS)}"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches before them")
    parser.add_argument("--predict", action="store_true", help="measure prediction at batch 256")
    parser.add_argument("--predict-batches", type=int, default=8, help="batches of 256 to predict")
    parser.add_argument("--full-epoch", action="store_true", help="time a real epoch (391 batches)")
    parser.add_argument("--imdb", help="IMDB folder (default $LSTMKIT_IMDB or ../shared/data/imdb)")
    parser.add_argument(
        "--peer-python",
        default=os.environ.get("LSTMKIT_BENCH_PEER_PYTHON", sys.executable),
        help="interpreter for the Keras and torch workers (default: this one, or $LSTMKIT_BENCH_PEER_PYTHON)",
    )
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per worker run")
    parser.add_argument("--json", metavar="OUT", help="save meta, raw runs and summary here")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in FRAMEWORKS]
    if unknown or not names:
        parser.error(f"--only takes names from {','.join(FRAMEWORKS)}, got {args.only!r}")
    if min(args.rounds, args.batches, args.warmup, args.predict_batches) < 1:
        parser.error("--rounds, --batches, --warmup and --predict-batches must be >= 1")
    args.names = names
    return args


def main() -> None:
    args = parse_args()
    meta = machine_info()
    imdb = find_imdb(args.imdb)
    print(f"# lstmkit training benchmark, {meta['date']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="lstmkit-bench-") as tmp:
        data, data_info = prepare_data(imdb, Path(tmp))
        print(
            f"data: {data_info['reviews']} train reviews from {imdb}, {data_info['loader']}, "
            f"{data_info['vectorizer']}; mean length {data_info['mean_length']:.0f} of "
            f"{SEQ_LEN}, {100 * data_info['full_length_share']:.0f}% at full length "
            f"({data_info['seconds']} s)",
            flush=True,
        )

        active, runs, skipped, failed = list(args.names), [], {}, {}
        for round_index in range(args.rounds):
            shift = round_index % len(args.names)
            order = args.names[shift:] + args.names[:shift]
            for name in [n for n in order if n in active]:
                framework = FRAMEWORKS[name]
                python = args.peer_python if framework.is_peer else sys.executable
                t0 = time.perf_counter()
                status, result = run_worker(framework, python, data, args)
                wall = time.perf_counter() - t0
                if status == "ok":
                    result["round"] = round_index + 1
                    runs.append(result)
                    print(
                        f"round {round_index + 1} {name}: {result['ms_per_batch']:.1f} ms/batch, "
                        f"{result['peak_rss_mib']:.0f} MiB ({wall:.0f} s)",
                        flush=True,
                    )
                else:
                    active.remove(name)
                    (skipped if status == "skip" else failed)[name] = result
                    print(f"{'skip' if status == 'skip' else 'FAILED'} {name}: {result}", flush=True)

    summary = {}
    for name in args.names:
        results = [r for r in runs if r["framework"] == name]
        if results:
            summary[name] = summarize(results, args.full_epoch)
    meta["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    meta["lstmkit"] = lstmkit_version()

    print()
    print(
        f"date: {meta['date']}; CPU: {meta['cpu']}, {meta['cores']} cores "
        f"({meta['usable_cores']} usable); load average {meta['load_average']} at start, "
        f"{meta['load_average_end']} at end"
    )
    print(
        f"settings: {args.rounds} round(s) x {args.batches} timed batches of 64 after "
        f"{args.warmup} warmup; epoch = {'measured' if args.full_epoch else 'median x 391 (est.)'}"
        f"; predict: {f'{args.predict_batches} batches of 256' if args.predict else 'off'}"
    )
    busiest = max(meta["load_average"][0], meta["load_average_end"][0])
    if busiest > 0.5 * meta["usable_cores"]:
        print(
            f"WARNING: the machine was busy (load average up to {busiest} on "
            f"{meta['usable_cores']} cores): the numbers are noisy, PyTorch's most of all "
            "(its OpenMP threads wait for each other at every op when cores are taken)"
        )
    versions = {"python": meta["python"], "lstmkit": meta["lstmkit"]}
    for s in summary.values():
        versions.update(s["versions"])
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print()
    if summary:
        print(table(summary))
        if "lstmkit" not in summary:
            print("\n(lstmkit did not run, so there are no ratios.)")
    for name, s in summary.items():
        if "train_on_batch_ms_median" in s["extra"]:
            print(
                f"- {name}: train_on_batch median {s['extra']['train_on_batch_ms_median']:.1f} ms "
                f"(last round), against {s['ms_per_batch']:.1f} ms per step inside fit()"
            )
    for name, message in {**skipped, **failed}.items():
        print(f"- {name}: {'skipped' if name in skipped else 'failed'}: {message.splitlines()[0]}")

    if args.json:
        report = {
            "meta": meta,
            "data": data_info,
            "settings": vars(args),
            "versions": versions,
            "summary": summary,
            "runs": runs,
            "skipped": skipped,
            "failed": failed,
        }
        Path(args.json).write_text(json.dumps(report, indent=1))
        print(f"\nsaved {args.json}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
