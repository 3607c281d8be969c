"""A trained model behind HTTP (FastAPI + uvicorn, the `lstmkit[serve]` extra): predict, explain,
model info, health and a page, with concurrent requests batched.

    app = create_app(load_model("runs/m"))      # the app (app.py), batching with batcher.py
    run_server("runs/m", port=8000)             # `lstmkit serve runs/m` (server.py)
"""

from lstmkit.serve.app import ServeSettings, create_app
from lstmkit.serve.batcher import Batcher
from lstmkit.serve.server import run_server

__all__ = ["Batcher", "ServeSettings", "create_app", "run_server"]
