"""`lstmkit serve` as a real process on 127.0.0.1, asked over real HTTP (httpx): its answers equal
the Python API's, its errors are JSON that name the field, concurrent requests are batched, and
SIGTERM answers the requests in flight before the process ends."""

import asyncio
import hashlib
import json
import signal
import socket
import subprocess
import sys

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

import lstmkit
from helpers import synthetic_reviews
from lstmkit.cli import main
from lstmkit.explain import explain

KEY = "test-key-1"
AUTH = {"Authorization": f"Bearer {KEY}"}
TEXTS = ["a great and lovely movie", "dull awful boring plot", "", "zzz unknownword qqq", "the movie was fine but bad"]


@pytest.fixture(scope="module")
def server(model_dir, start_server):
    s = start_server(model_dir, "--api-key", KEY, "--max-texts", "8", "--max-chars", "300", "--max-wait-ms", "20")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def offline(model_dir):
    return lstmkit.load_model(model_dir)


def test_predict_equals_the_python_api(server, offline):
    with server.client(headers=AUTH) as http:
        r = http.post("/v1/predict", json={"texts": TEXTS, "top_k": 2})
    assert r.status_code == 200, r.text
    rows = r.json()["predictions"]
    expected = offline.predict(TEXTS)
    assert [row["label"] for row in rows] == expected.labels
    got = np.array([[row["probabilities"][c] for c in ("neg", "pos")] for row in rows])
    np.testing.assert_allclose(got, expected.probabilities, atol=1e-5)
    for row, p in zip(rows, expected.probabilities):
        assert row["probability"] == pytest.approx(p.max(), abs=1e-5)
        assert [t["label"] for t in row["top_k"]] == [row["label"], "pos" if row["label"] == "neg" else "neg"]


def test_explain_equals_explain_json(server, offline):
    text = "a great movie but the plot was dull"
    with server.client(headers=AUTH) as http:
        r = http.post("/v1/explain", json={"text": text})
        page = http.post("/v1/explain/page", json={"text": text})
    assert r.status_code == 200, r.text
    got, expected = r.json(), json.loads(json.dumps(explain(offline, text)))
    assert got.keys() == expected.keys()
    assert (got["label"], got["tokens"], got["ids"]) == (expected["label"], expected["tokens"], expected["ids"])
    np.testing.assert_allclose(got["probabilities"], expected["probabilities"], atol=1e-5)
    np.testing.assert_allclose(got["attribution"], expected["attribution"], atol=1e-3)
    np.testing.assert_allclose(
        got["layers"][0]["directions"][0]["f"], expected["layers"][0]["directions"][0]["f"], atol=1e-3
    )
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert (
        '<script id="explain-data" type="application/json">' in page.text and '"text":"a great movie but' in page.text
    )


def test_health_model_info_and_page(server, model_dir):
    with server.client() as http:
        health = http.get("/health")  # no key needed: a load balancer asks
        page = http.get("/")
        info = http.get("/v1/model", headers={"X-API-Key": KEY})
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert page.status_code == 200 and '<form id="form">' in page.text and "/v1/predict" in page.text
    assert info.status_code == 200
    info = info.json()
    assert info["classes"] == ["neg", "pos"] and info["lstmkit_version"] == lstmkit.__version__
    assert info["weights_sha256"] == hashlib.sha256((model_dir / "weights.safetensors").read_bytes()).hexdigest()
    assert [layer["type"] for layer in info["config"]["layers"]] == ["Embedding", "Bidirectional", "Dense"]
    assert info["limits"]["max_texts"] == 8 and info["limits"]["max_chars"] == 300


@pytest.mark.parametrize(
    "path, body, status, field",
    [
        ("/v1/predict", b"{", 400, "body"),
        ("/v1/predict", b"\xff\xfe not utf-8", 400, "body"),
        ("/v1/predict", b"", 400, "body"),
        ("/v1/predict", b'{"texts": ["ok"]} and more', 400, "body"),
        ("/v1/predict", b'{"texts": ["\\ud800 a lone surrogate"]}', 400, "body"),
        ("/v1/predict", b"[]", 422, "body"),
        ("/v1/predict", b'{"texts": "one text"}', 422, "texts"),
        ("/v1/predict", b'{"texts": ["ok", 3]}', 422, "texts.1"),
        ("/v1/predict", b'{"texts": ["ok", null]}', 422, "texts.1"),
        ("/v1/predict", b'{"texts": []}', 422, "texts"),
        ("/v1/predict", b'{"text": "ok"}', 422, "texts"),
        ("/v1/predict", b'{"texts": ["ok"], "top_k": -1}', 422, "top_k"),
        ("/v1/predict", b'{"texts": ["ok"], "top_k": 1.5}', 422, "top_k"),
        ("/v1/predict", b'{"texts": ["ok"], "top_k": true}', 422, "top_k"),
        ("/v1/predict", b'{"texts": ["ok"], "extra": 1}', 422, "extra"),
        ("/v1/predict", json.dumps({"texts": ["a"] * 9}).encode(), 413, "texts"),
        ("/v1/predict", json.dumps({"texts": ["ok", "x" * 301]}).encode(), 413, "texts.1"),
        ("/v1/predict", json.dumps({"texts": ["x" * 40_000]}).encode(), 413, "body"),
        ("/v1/explain", b'{"texts": ["ok"]}', 422, "text"),
        ("/v1/explain", json.dumps({"text": "x" * 301}).encode(), 413, "text"),
    ],
)
def test_bad_requests_get_json_errors_that_name_the_field(server, path, body, status, field):
    with server.client(headers={**AUTH, "Content-Type": "application/json"}) as http:
        r = http.post(path, content=body)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field and r.json()["error"]


def test_a_body_larger_than_the_limit_is_refused_without_a_length(server):
    """A chunked body (no Content-Length) is read only up to the limit."""
    chunk = b'{"texts": ["' + b"x" * 20_000

    def body():
        yield chunk
        yield chunk  # past the 33 kB this server's limits allow
        yield b'"]}'

    with server.client(headers=AUTH) as http:
        r = http.post("/v1/predict", content=body())
    assert r.status_code == 413 and r.json()["field"] == "body"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": KEY + "x"}, {"Authorization": KEY}]
)
def test_the_api_key_is_required(server, headers):
    with server.client(headers=headers) as http:
        for r in (
            http.post("/v1/predict", json={"texts": ["ok"]}),
            http.get("/v1/model"),
            http.post("/v1/explain", content=b"{"),
        ):
            assert r.status_code == 401 and r.json()["field"] == "authorization"
            assert r.headers["www-authenticate"] == "Bearer"


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(server, offline):
    texts, _ = synthetic_reviews(48, seed=7)
    expected = offline.predict(texts).probabilities[:, 1]

    async def ask_all():
        async with server.async_client(headers=AUTH) as http:
            return await asyncio.gather(*(http.post("/v1/predict", json={"texts": [t]}) for t in texts))

    with server.client() as http:
        before = http.get("/health").json()
        answers = asyncio.run(ask_all())
        after = http.get("/health").json()
    assert [a.status_code for a in answers] == [200] * len(texts)
    got = [a.json()["predictions"][0]["probabilities"]["pos"] for a in answers]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert after["texts"] - before["texts"] == len(texts)
    assert after["model_calls"] - before["model_calls"] < len(texts) / 2  # batched, not one call each


def test_sigterm_answers_the_requests_in_flight_then_exits(model_dir, offline, start_server):
    # A batch waits 3 s to fill: SIGTERM comes once the server holds all four requests, unanswered.
    # The key comes from the environment this time.
    server = start_server(model_dir, "--max-wait-ms", "3000", env={"LSTMKIT_API_KEY": "from-env"})
    texts = TEXTS[:4]
    assert httpx.get(server.url + "/v1/model", timeout=30).status_code == 401

    async def ask_then_terminate():
        async with server.async_client(headers={"X-API-Key": "from-env"}) as http:
            asks = [asyncio.create_task(http.post("/v1/predict", json={"texts": [t]})) for t in texts]
            for _ in range(100):
                waiting = (await http.get("/health")).json()["waiting"]
                if waiting == len(texts):
                    break
                await asyncio.sleep(0.02)
            assert waiting == len(texts) and not any(a.done() for a in asks)
            server.process.send_signal(signal.SIGTERM)
            return await asyncio.gather(*asks)

    answers = asyncio.run(ask_then_terminate())
    status = server.stop(timeout=30)
    assert [a.status_code for a in answers] == [200] * len(texts)
    got = [a.json()["predictions"][0]["probabilities"]["pos"] for a in answers]
    np.testing.assert_allclose(got, offline.predict(texts).probabilities[:, 1], atol=1e-5)
    assert status in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled, once it is done
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/health", timeout=5)


def test_only_loopback_addresses_and_free_ports(model_dir):
    r = CliRunner().invoke(main, ["serve", str(model_dir), "--host", "0.0.0.0"])
    assert r.exit_code == 2 and "loopback addresses only" in r.output, r.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        r = CliRunner().invoke(main, ["serve", str(model_dir), "--port", str(taken.getsockname()[1])])
    assert r.exit_code == 2 and "cannot listen on 127.0.0.1" in r.output, r.output


def test_the_command_line_loads_the_server_only_when_it_serves():
    """`lstmkit --help` and the core install need neither FastAPI nor uvicorn (nor JAX)."""
    probe = "import sys, lstmkit.cli; print(sorted({'fastapi', 'uvicorn', 'jax'} & set(sys.modules)))"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"
