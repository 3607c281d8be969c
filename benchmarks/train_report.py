"""What bench_train.py prints: a framework's rounds pooled, the per-setting table, the header.

The columns are described in benchmarks/README.md ("What each number means").
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
from pathlib import Path

import numpy as np


def summarize(results: list[dict], full_epoch: bool) -> dict:
    """Pool one framework's rounds: median step over all timed steps, max RSS, median rest.

    lstmkit's bucketed batches differ in shape: there each round's ms_per_batch is already the
    epoch's average batch (its shapes weighted by their counts), and the median of those is taken."""
    steps = [t for r in results for t in r["step_ms"]]
    weighted = results[0].get("extra", {}).get("epoch_weighted")
    ms = statistics.median(r["ms_per_batch"] for r in results) if weighted else statistics.median(steps)
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


def print_header(args, meta: dict, versions: dict) -> None:
    print(
        f"date: {meta['date']}; CPU: {meta['cpu']}, {meta['cores']} cores "
        f"({meta['usable_cores']} usable); load average {meta['load_average']} at start, "
        f"{meta['load_average_end']} at end"
    )
    print(
        f"settings: model {args.model}; {args.rounds} round(s) x {args.batches} timed batches after "
        f"{args.warmup} warmup; epoch = {'measured' if args.full_epoch else 'median x batches (est.)'}"
        f"; predict: {f'{args.predict_batches} batches of 256' if args.predict else 'off'}"
    )
    busiest = max(meta["load_average"][0], meta["load_average_end"][0])
    if busiest > 0.5 * meta["usable_cores"]:
        print(
            f"WARNING: the machine was busy (load average up to {busiest} on "
            f"{meta['usable_cores']} cores): the numbers are noisy, PyTorch's most of all "
            "(its OpenMP threads wait for each other at every op when cores are taken)"
        )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print()


def print_details(summary: dict, skipped: dict, failed: dict) -> None:
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
