"""`lstmkit serve`: a saved model behind HTTP on 127.0.0.1 (needs the `lstmkit[serve]` extra)."""

from __future__ import annotations

import click

from lstmkit.cli.compile_cache import enable_compile_cache
from lstmkit.errors import LstmkitError


@click.command("serve")
@click.argument("model_dir", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="a loopback address: nothing else is accepted")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0 takes a free one")
@click.option(
    "--api-key",
    envvar="LSTMKIT_API_KEY",
    show_envvar=True,
    default=None,
    help="require it on every request but GET / and /health ('Authorization: Bearer KEY' or 'X-API-Key: KEY')",
)
@click.option(
    "--max-texts", type=click.IntRange(min=1), default=256, show_default=True, help="texts per request (413 beyond)"
)
@click.option(
    "--max-chars",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="characters per text (413 beyond)",
)
@click.option("--max-batch", type=click.IntRange(min=1), default=64, show_default=True, help="texts per model call")
@click.option(
    "--max-wait-ms", type=click.FloatRange(min=0), default=5.0, show_default=True, help="how long a batch waits to fill"
)
def serve_command(model_dir, host, port, api_key, max_texts, max_chars, max_batch, max_wait_ms):
    """Serve a saved model over HTTP: POST /v1/predict, POST /v1/explain, GET /v1/model, GET /health,
    and a page at /. Concurrent requests are batched; SIGTERM or Ctrl-C answers those in flight, then stops."""
    try:
        from lstmkit.serve import ServeSettings, run_server
    except ImportError as e:
        raise LstmkitError(
            f"lstmkit serve needs FastAPI and uvicorn ({e}); install them with: pip install 'lstmkit[serve]'"
        ) from None

    enable_compile_cache()
    settings = ServeSettings(
        max_texts=max_texts, max_chars=max_chars, max_batch=max_batch, max_wait_ms=max_wait_ms, api_key=api_key or None
    )
    run_server(model_dir, host=host, port=port, settings=settings)
