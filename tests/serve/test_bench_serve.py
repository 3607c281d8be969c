"""The short version of benchmarks/bench_serve.py: a real server, real async clients, a second of load."""

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_serve.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_serve", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_serving_benchmark_runs_short_without_errors(model_dir):
    bench = load_bench()
    result = bench.run(model_dir, data=None, clients=(1, 4), seconds=0.5, warmup=0.2, per_request=2, n_texts=32)
    assert result["offline_reviews_per_s"] > 0
    assert [r["clients"] for r in result["levels"]] == [1, 4]
    for r in result["levels"]:
        assert r["errors"] == 0 and r["requests"] > 0, r
        assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"], r
        assert r["reviews_per_s"] > 0
    # the server predicted every review the clients counted (and those of the warm-ups and its own warm-up)
    assert result["health"]["texts"] > 2 * sum(r["requests"] for r in result["levels"])
