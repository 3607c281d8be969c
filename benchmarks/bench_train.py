"""Side-by-side training benchmark: lstmkit against Keras 3 (TensorFlow and JAX) and PyTorch.

    python benchmarks/bench_train.py --predict            # all four, 3 alternating rounds
    python benchmarks/bench_train.py --only keras-jax,torch --batches 20 --rounds 1
    python benchmarks/bench_train.py --model default --grid --corpus imdb,short \
        --hidden 64,128,256 --directions uni,bi --cores 1,2 --rounds 1 --batches 3 --warmup 1

The harness prepares the data once per corpus and length (`train_data.py`): by default the IMDB
train reviews, vectorized as in the seed notebook (vocabulary of 100 ids including padding 0 and
[UNK] 1, length 200, right padded/truncated, int32) with `lstmkit.data.text.TextVectorizer`,
saved to an npz in a temporary directory. Then it runs every framework in a subprocess of its
own, so peak RSS is the framework's alone and the Keras backend is chosen by KERAS_BACKEND.
Frameworks alternate within each of --rounds rounds (the order rotates every round), so a slow
spell of a shared machine hits them all alike.

--model default builds the `default` preset's model instead (vocabulary 10,000, length 800,
E = 128, word pairs, max+mean pooling, dropout, clipping, weight average; adversarial training
off, as the peers lack it), and lstmkit trains on length-bucketed batches as `lstmkit train`
does, the peers on their usual padded batches. --corpus short reads IMDB's first sentences
(`make_short_texts.py`). --grid measures the product of the lists --corpus, --lengths,
--batch-sizes, --hidden, --directions and --cores (each worker pinned with taskset, its threads
set to match; `train_grid.py`) and prints one row per setting with lstmkit's speed-up on the
fastest peer. `plot_bench_train.py` draws the JSON's rows against T, H and B.

Worker protocol (version 1)
---------------------------
A worker is `benchmarks/workers/<name>_worker.py`, run as

    python WORKER --data DATA.npz --batches N --warmup W [--batch-size 64] [--predict]
                  [--predict-batches P] [--predict-batch-size 256] [--full-epoch] [--seed 0]
                  [--quick] [model options]

`workers/protocol.py` parses exactly these options and holds the helpers below; use it. The
model options (its `_add_model_options`) default to the seed's model: --vocab, --embed,
--hidden, --direction uni|bi, --pooling last|maxmean, --dense, --word-pairs, --dropout,
--embedding-dropout, --learning-rate, --clipnorm, --weight-average, --sequence-length,
--bucket and --table-updates (lstmkit only) and --threads. --quick skips secondary timings.

- DATA.npz holds `x` (N_reviews, W) int32 token ids, 0 = padding at the end, and `y`
  (N_reviews,) int32 labels in {0, 1}, shuffled once (seed 0). Nothing else is needed.
- Training: the options' model (by default the seed's: Embedding(100, 64, mask_zero) ->
  BiLSTM(64) -> Dense(64, relu) -> Dense(1, sigmoid), Adam, binary cross-entropy) at
  --batch-size, trained from fresh weights
  on the batches `protocol.training_batch_starts(N_reviews, B, W + N)`: the first W batches in
  data order are warmup (compile), the next N are timed one by one. A step's time ends only when
  its update has finished (block on the loss or the parameters): no asynchronous dispatch may
  leak into the next step's time.
- --full-epoch: then one real epoch over all reviews in data order, the last batch partial
  (391 batches for 25 000 reviews), timed end to end, as the user would run it.
- --predict: predict P batches of --predict-batch-size reviews (probabilities), after one
  untimed warmup batch; report reviews per second.
- lstmkit with --bucket times the first epoch's length-bucketed batches instead, per shape
  after compiling each (see workers/lstmkit_worker.py), and reports as ms_per_batch the
  epoch's average batch (extra.epoch_weighted).
- Output: one JSON line, the last line on stdout (`protocol.emit` writes it), with keys
    protocol              1
    framework             'lstmkit' | 'keras-tf' | 'keras-jax' | 'torch'
    versions              {library: version}, including python and numpy
    threads               compute threads the worker set, or null for the library's default
    batch_size            B
    warmup_ms             [W floats]: the warmup steps, the first includes compilation
    step_ms               [N floats]: the timed steps
    ms_per_batch          median of step_ms (lstmkit --bucket: the epoch's average batch)
    epoch_batches         batches in one epoch (391)
    epoch_s               measured full epoch in seconds, or null without --full-epoch
    predict_batch_size    P's batch size, or null without --predict
    predict_reviews_per_s prediction throughput, or null without --predict
    peak_rss_mib          resource.getrusage(RUSAGE_SELF).ru_maxrss in MiB, at the end
    final_loss            the last training loss (a sanity check that it trained)
    notes                 one line on what was measured
    architecture          the model options
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
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import train_data
import train_grid
import train_report

WORKERS_DIR = Path(__file__).resolve().parent / "workers"
EXIT_UNAVAILABLE = 3


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


# ---- running workers ------------------------------------------------------------------------


def worker_command(framework: Framework, python: str, data: Path, args, setting) -> list[str]:
    prefix, _ = train_grid.pinning(setting, framework.name)
    command = [
        *prefix,
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
    if args.grid:
        command.append("--quick")
    return command + train_grid.worker_options(setting, args.model)


def run_worker(framework: Framework, python: str, data: Path, args, setting) -> tuple[str, dict | str]:
    """('ok', result) | ('skip', message) | ('fail', message)."""
    env = {
        **os.environ,
        **framework.env,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "JAX_PLATFORMS": "cpu",
        "CUDA_VISIBLE_DEVICES": "",
        **train_grid.pinning(setting, framework.name)[1],
    }  # a CPU benchmark, even on a machine with a GPU
    command = worker_command(framework, python, data, args, setting)
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
    grid = parser.add_argument_group("settings (lists are comma-separated; --grid measures their product)")
    grid.add_argument(
        "--model", choices=("seed", "default"), default="seed", help="the seed's model or the default preset's"
    )
    grid.add_argument("--corpus", default="imdb", help="imdb (whole reviews) and/or short (first sentences)")
    grid.add_argument("--lengths", default="", help="the model's longest input T (default: the model's, 200 or 800)")
    grid.add_argument("--batch-sizes", default="64", help="training batch sizes B")
    grid.add_argument("--hidden", default="64", help="LSTM units H per direction")
    grid.add_argument("--directions", default="bi", help="uni and/or bi")
    grid.add_argument("--cores", default="", help="pin each worker to this many cores (taskset); default: not pinned")
    grid.add_argument("--grid", action="store_true", help="several settings: one table row per setting")
    grid.add_argument("--skip", default="", help="leave out FRAMEWORK@CORPUS[:H] items, e.g. torch@imdb:256")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in FRAMEWORKS]
    if unknown or not names:
        parser.error(f"--only takes names from {','.join(FRAMEWORKS)}, got {args.only!r}")
    if min(args.rounds, args.batches, args.warmup, args.predict_batches) < 1:
        parser.error("--rounds, --batches, --warmup and --predict-batches must be >= 1")
    train_grid.check(args, parser)
    args.names, args.settings = names, train_grid.settings(args)
    if len(args.settings) > 1 and not args.grid:
        parser.error(f"these lists make {len(args.settings)} settings; add --grid to measure them all")
    return args


def run_setting(args, setting, data: Path) -> tuple[list, dict, dict]:
    """All rounds of one setting, frameworks alternating; (runs, skipped, failed)."""
    active, runs, skipped, failed = list(args.names), [], {}, {}
    for round_index in range(args.rounds):
        shift = round_index % len(args.names)
        order = args.names[shift:] + args.names[:shift]
        for name in [n for n in order if n in active and not train_grid.left_out(setting, n, args.skip)]:
            framework = FRAMEWORKS[name]
            python = args.peer_python if framework.is_peer else sys.executable
            t0 = time.perf_counter()
            status, result = run_worker(framework, python, data, args, setting)
            wall = time.perf_counter() - t0
            if status == "ok":
                result["round"] = round_index + 1
                result["setting"] = setting.as_dict()
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
    return runs, skipped, failed


def summaries(args, runs: list) -> dict:
    summary = {}
    for name in args.names:
        results = [r for r in runs if r["framework"] == name]
        if results:
            summary[name] = train_report.summarize(results, args.full_epoch)
    return summary


def measure(args, imdb: Path, tmp: Path, save=None) -> dict:
    """Every setting, its data prepared once per corpus and length; what main reports.

    save(report): called after each setting (--json keeps what a long grid has measured so far)."""
    report = {"data": {}, "runs": [], "skipped": {}, "failed": {}, "rows": [], "summaries": []}
    prepared = {}
    for setting in args.settings:
        key = (setting.corpus, setting.length)
        if key not in prepared:
            prepared[key] = train_data.prepare(
                imdb, setting.corpus, train_grid.vectorizing(args.model, setting.length), tmp
            )
            report["data"][f"{setting.corpus}_{setting.length}"] = prepared[key][1]
            print(train_data.describe(prepared[key][1], imdb), flush=True)
        data, data_info = prepared[key]
        print(f"## {setting.label()}", flush=True)
        runs, skipped, failed = run_setting(args, setting, data)
        report["runs"] += runs
        report["skipped"].update(skipped)
        report["failed"].update({f"{name} ({setting.label()})": m for name, m in failed.items()})
        summary = summaries(args, runs)
        report["summaries"].append({"setting": setting.as_dict(), "summary": summary})
        report["rows"].append(train_grid.grid_row(setting, summary, data_info))
        if save is not None:
            save(report)
    return report


def versions_of(meta: dict, report: dict) -> dict:
    versions = {"python": meta["python"], "lstmkit": meta["lstmkit"]}
    for entry in report["summaries"]:
        for s in entry["summary"].values():
            versions.update(s["versions"])
    return versions


def save_json(args, meta: dict, report: dict) -> None:
    """--json OUT: meta, settings, versions, every run, the summaries and the grid's rows."""
    if not args.json:
        return
    settings = {k: v for k, v in vars(args).items() if k != "settings"}
    settings["settings"] = [s.as_dict() for s in args.settings]
    single = report["summaries"][0]["summary"] if len(report["summaries"]) == 1 else None
    saved = {"meta": meta, "settings": settings, "versions": versions_of(meta, report), "summary": single, **report}
    part = Path(args.json + ".part")
    part.write_text(json.dumps(saved, indent=1))
    part.replace(args.json)


def main() -> None:
    args = parse_args()
    meta = train_report.machine_info()
    imdb = train_data.find_imdb(args.imdb)
    print(f"# lstmkit training benchmark, {meta['date']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="lstmkit-bench-") as tmp:
        report = measure(args, imdb, Path(tmp))
    meta["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    meta["lstmkit"] = train_report.lstmkit_version()
    versions = {"python": meta["python"], "lstmkit": meta["lstmkit"]}
    for entry in report["summaries"]:
        for s in entry["summary"].values():
            versions.update(s["versions"])

    print()
    train_report.print_header(args, meta, versions)
    if args.grid:
        print(train_grid.grid_table(report["rows"], args.names))
        print("\n" + train_grid.verdict(report["rows"]))
        for name, message in {**report["skipped"], **report["failed"]}.items():
            print(f"- {name}: {message.splitlines()[0]}")
    else:
        train_report.print_details(report["summaries"][0]["summary"], report["skipped"], report["failed"])

    if args.json:
        save_json(args, meta, report)
        print(f"\nsaved {args.json}")
    if report["failed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
