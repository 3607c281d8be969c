"""`lstmkit serve` under load: N concurrent clients for M seconds against a real server on 127.0.0.1.

Each client (an httpx.AsyncClient of its own) sends one review per request (`--per-request`), the next as soon as
the last is answered. Per level of concurrency it prints the reviews answered per second, the
latency percentiles p50/p95/p99 and the errors (any answer but a 200, or no answer), and beside
them the offline throughput of `Sequential.predict` at batch 256, what `lstmkit predict` runs, in
this process while the server idles.

The model is the one a preset describes (`--preset`, default seed: the notebook's 98-word
vocabulary, 200 tokens, Embedding 64, BiLSTM(64), Dense(64, relu), Dense(1, sigmoid)) with
fresh weights: speed does not depend on what the weights learned. `--model DIR` serves a saved
model instead. Texts: IMDB test reviews when the archive is
there (`--data`), else synthetic reviews of IMDB's length. The clients share the server's 2 cores.

    python benchmarks/bench_serve.py                           # 1, 8 and 64 clients, 5 s each
    python benchmarks/bench_serve.py --clients 64 --per-request 16   # 16 reviews in each request
    python benchmarks/bench_serve.py --client raw                    # clients that cost next to nothing
    python benchmarks/bench_serve.py --clients 64 --seconds 10 --model runs/imdb-default
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

IMDB = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "imdb" / "aclImdb_labeled.tar.gz"
READY = re.compile(r"lstmkit serve: .* on (http://127\.0\.0\.1:\d+) ")


def reviews(data, n):
    """n review texts: IMDB's test split from `data` if it exists, else synthetic ones of ~230 words."""
    if data and Path(data).exists():
        from lstmkit.data.imdb import load_imdb

        return list(load_imdb(data, split="test").texts[:n])
    rng = np.random.default_rng(0)
    words = [
        "the",
        "movie",
        "was",
        "a",
        "good",
        "bad",
        "great",
        "awful",
        "plot",
        "and",
        "it",
        "actor",
        "scene",
        "really",
        "not",
        "very",
        "film",
        "story",
    ]
    return [" ".join(rng.choice(words, rng.integers(50, 400))) for _ in range(n)]


def fresh_model(preset, texts, folder):
    """The classifier a preset describes (`lstmkit train --preset`), fresh weights, its vocabulary
    from `texts`, saved in `folder`."""
    from lstmkit.tasks.classifier import build_model
    from lstmkit.tasks.presets import resolve

    model = build_model(resolve(preset), 2, class_names=["neg", "pos"])
    model.vectorizer.adapt(texts)
    model.build(seed=0)
    model.save(folder)
    return folder


def offline_throughput(model_dir, texts, batch_size=256, rounds=2):
    """Reviews per second of `load_model(dir).predict(texts, batch_size=256)`, the best of `rounds` after a warm-up."""
    from lstmkit.nn.model import load_model

    model = load_model(model_dir)
    model.predict(texts, batch_size=batch_size)  # compiles
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        model.predict(texts, batch_size=batch_size)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def start_server(model_dir, *flags):
    """`lstmkit serve MODEL_DIR --port 0` as a process; (process, url) once it says it is ready."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lstmkit.cli", "serve", str(model_dir), "--port", "0", *flags],
        stdout=subprocess.PIPE,
        text=True,
    )
    match = READY.search(process.stdout.readline())
    if not match:
        process.kill()
        raise SystemExit("the server did not start (its error is above)")
    return process, match.group(1)


class HttpxClient:
    """One httpx.AsyncClient: what a Python user of the server would write."""

    def __init__(self, url):
        self.http = httpx.AsyncClient(base_url=url, timeout=60)

    async def predict(self, texts):
        try:
            return (await self.http.post("/v1/predict", json={"texts": texts})).status_code
        except httpx.HTTPError:
            return None

    async def close(self):
        await self.http.aclose()


class RawClient:
    """One keep-alive HTTP/1.1 connection on asyncio streams, for measuring the server itself:
    a request costs it tens of microseconds, where httpx spends a millisecond or more."""

    def __init__(self, url):
        self.host, self.port = url.removeprefix("http://").split(":")
        self.reader = self.writer = None

    async def predict(self, texts):
        body = json.dumps({"texts": texts}).encode()
        head = f"POST /v1/predict HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, int(self.port))
            self.writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status = int((await self.reader.readline()).split()[1])
            length = 0
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                length = int(value) if name.strip().lower() == b"content-length" else length
            await self.reader.readexactly(length)
            return status
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            await self.close()
            return None

    async def close(self):
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


CLIENTS = {"httpx": HttpxClient, "raw": RawClient}


async def load(url, texts, clients, seconds, warmup, per_request, kind="httpx"):
    """`clients` clients, each asking `per_request` reviews at a time: unmeasured for `warmup`
    seconds (the batch shapes compile), then measured for `seconds`: (latencies in s, errors, elapsed s).

    Each client is a client object of its own (`kind`: "httpx" or "raw"), made before the clock
    starts: one httpx pool shared by 64 connections costs httpx more than the server spends.
    """
    loop = asyncio.get_running_loop()
    pool = [CLIENTS[kind](url) for _ in range(clients)]
    latencies, errors = [], 0

    async def client(i, stop, record):
        nonlocal errors
        k = i * per_request
        while loop.time() < stop:
            batch = [texts[(k + j) % len(texts)] for j in range(per_request)]
            start = time.perf_counter()
            ok = await pool[i].predict(batch) == 200
            if record:
                latencies.append(time.perf_counter() - start) if ok else None
                errors += not ok
            k += clients * per_request

    try:
        for duration, record in ((warmup, False), (seconds, True)):
            start = time.perf_counter()
            stop = loop.time() + duration
            await asyncio.gather(*(client(i, stop, record) for i in range(clients)))
        return latencies, errors, time.perf_counter() - start
    finally:
        await asyncio.gather(*(c.close() for c in pool))


def cpu_seconds(pid):
    """CPU seconds (user + system) a process has used so far, from /proc (Linux; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime in clock ticks


def level(url, server_pid, texts, clients, seconds, warmup, per_request, kind="httpx"):
    """One level of concurrency: reviews answered per second, latency percentiles, errors, and the
    CPU seconds the server and the clients used (warm-up included): which of them was the bottleneck."""
    server_before, clients_before = cpu_seconds(server_pid), time.process_time()
    latencies, errors, elapsed = asyncio.run(load(url, texts, clients, seconds, warmup, per_request, kind))
    server_cpu = cpu_seconds(server_pid)
    ms = np.percentile(np.array(latencies) * 1000, [50, 95, 99]) if latencies else [float("nan")] * 3
    return {
        "clients": clients,
        "requests": len(latencies),
        "reviews_per_s": len(latencies) * per_request / elapsed,
        "p50_ms": float(ms[0]),
        "p95_ms": float(ms[1]),
        "p99_ms": float(ms[2]),
        "errors": errors,
        "server_cpu_s": server_cpu - server_before if server_cpu is not None else None,
        "clients_cpu_s": time.process_time() - clients_before,
        "wall_s": seconds + warmup,
    }


def run(
    model_dir=None,
    *,
    preset="seed",
    data=IMDB,
    clients=(1, 8, 64),
    seconds=5.0,
    warmup=1.0,
    per_request=1,
    client="httpx",
    n_texts=2000,
    serve_flags=(),
):
    """Every level and the offline figure, as a dict; the benchmark's whole work (tests call it short)."""
    texts = reviews(data, n_texts)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = model_dir or fresh_model(preset, texts, Path(tmp) / "model")
        offline = offline_throughput(model_dir, texts)
        process, url = start_server(model_dir, *serve_flags)
        try:
            levels = [level(url, process.pid, texts, n, seconds, warmup, per_request, client) for n in clients]
            with httpx.Client(base_url=url) as http:
                health = http.get("/health").json()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
            process.stdout.close()
    return {"offline_reviews_per_s": offline, "levels": levels, "health": health, "texts": len(texts)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default=None, help="a saved model directory (default: the seed's model, fresh weights)"
    )
    parser.add_argument(
        "--preset", default="seed", help="the preset whose model to build without --model (default seed)"
    )
    parser.add_argument("--data", default=str(IMDB), help="the IMDB archive for the texts (synthetic ones without it)")
    parser.add_argument("--clients", default="1,8,64", help="levels of concurrency, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per level")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each level")
    parser.add_argument("--per-request", type=int, default=1, help="reviews in each request (default 1)")
    parser.add_argument(
        "--client", choices=sorted(CLIENTS), default="httpx", help="httpx (default), or raw: a minimal asyncio client"
    )
    parser.add_argument("--texts", type=int, default=2000, help="reviews to cycle through and to time offline")
    parser.add_argument("--max-batch", type=int, default=64, help="the server's --max-batch")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="the server's --max-wait-ms")
    args = parser.parse_args(argv)
    result = run(
        args.model,
        preset=args.preset,
        data=args.data,
        clients=[int(c) for c in args.clients.split(",")],
        seconds=args.seconds,
        warmup=args.warmup,
        per_request=args.per_request,
        client=args.client,
        n_texts=args.texts,
        serve_flags=("--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)),
    )
    offline = result["offline_reviews_per_s"]
    print(f"offline Sequential.predict, batch 256 (what `lstmkit predict` runs): {offline:,.0f} reviews/s")
    print(
        f"{'clients':>8} {'reviews/s':>10} {'of offline':>10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}"
        f" {'server CPU s':>13} {'clients CPU s':>14} {'wall s':>7}"
    )
    for r in result["levels"]:
        server_cpu = f"{r['server_cpu_s']:.1f}" if r["server_cpu_s"] is not None else "?"
        print(
            f"{r['clients']:>8} {r['reviews_per_s']:>10,.0f} {r['reviews_per_s'] / offline:>10.0%} "
            f"{r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['errors']:>7}"
            f" {server_cpu:>13} {r['clients_cpu_s']:>14.1f} {r['wall_s']:>7.1f}"
        )
    h = result["health"]
    print(
        f"server: {h['texts']:,} reviews in {h['model_calls']:,} model calls ({h['texts'] / max(1, h['model_calls']):.1f} a call)"
    )
    return result


if __name__ == "__main__":
    main()
