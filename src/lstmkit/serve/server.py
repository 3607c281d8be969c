"""`lstmkit serve`: a model directory behind uvicorn, on a loopback address only.

The socket is bound here, before the model loads, so a port in use or a non-loopback address is
one clear line (exit 2), and `--port 0` takes a free port (the line printed when the server is
ready names it). uvicorn stops on SIGTERM or Ctrl-C gracefully: it accepts no new connection,
answers the requests in flight, then the app's shutdown stops the batcher.

    run_server("runs/m", port=8000, settings=ServeSettings(api_key="secret"))
"""

from __future__ import annotations

import ipaddress
import socket
import sys

import uvicorn

from lstmkit.errors import LstmkitError
from lstmkit.io.checkpoint import WEIGHTS, read_config
from lstmkit.nn.model import load_model
from lstmkit.serve.app import ServeSettings, create_app


def loopback_socket(host, port):
    """A listening TCP socket on host:port; host must be a loopback address (127.0.0.1, ::1)."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise LstmkitError(
            f"--host {host}: lstmkit serve listens on loopback addresses only (127.0.0.1); "
            "put a reverse proxy in front of it to reach it from elsewhere"
        )
    host = "127.0.0.1" if host == "localhost" else host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise LstmkitError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def model_info(directory):
    """GET /v1/model's entries from the model directory's config.json."""
    directory, config = read_config(directory)
    return {
        "directory": str(directory),
        "weights_sha256": config["files"].get(WEIGHTS),
        "model_lstmkit_version": config.get("lstmkit_version"),
        "config": config.get("model"),
        "train_config": config.get("train_config"),
    }


def run_server(model_dir, *, host="127.0.0.1", port=8000, settings=ServeSettings(), log_level="warning"):
    """Serve a model directory until SIGTERM or Ctrl-C; prints one line when ready."""
    sock = loopback_socket(host, port)
    model = load_model(model_dir)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"http://{shown}:{bound_port}"
    key_note = "; requests need the API key" if settings.api_key else ""

    def ready():
        print(f"lstmkit serve: {model_dir} on {url} (SIGTERM or Ctrl-C stops it{key_note})", flush=True)

    app = create_app(model, settings, model_info=model_info(model_dir), on_ready=ready)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=None)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        sys.exit(1)
