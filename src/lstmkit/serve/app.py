"""The HTTP app over a loaded model (FastAPI): predict, explain, health, model info, and a page.

    POST /v1/predict        {"texts": [...], "top_k": K}  ->  {"predictions": [{"label",
                            "probability", "probabilities": {class: p}, "top_k"?}, ...]}; a
                            multi-label model gives "labels" (the set, likeliest first) for
                            "label" and "probability"
    POST /v1/explain        {"text": ..., "label": optional}  ->  the JSON `lstmkit explain --json` prints
    POST /v1/explain/page   the same request  ->  explain's self-contained HTML page
    GET  /v1/model          classes, config, lstmkit version, the weights' SHA-256, the limits
    GET  /health            {"status": "ok", "model_calls", "texts", "waiting"}: texts predicted, in
                            how many model calls, and how many wait for an answer now
    GET  /                  a page to type a text and see its prediction and explanation

Every error is JSON, {"error": message, "field": where}: 400 a body that is not JSON, 422 one
that does not fit the schema (the field named as "texts.2"), 413 more texts or characters than
the limits, 401 a missing or wrong API key (when the server has one). A user's input never
gets a 500. Prediction requests from concurrent clients are batched (`Batcher`).

    app = create_app(load_model("runs/m"), ServeSettings(api_key="secret"))
"""

from __future__ import annotations

import hmac
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lstmkit.errors import LstmkitError
from lstmkit.explain import explain as explain_text
from lstmkit.explain import render_html
from lstmkit.serve.batcher import Batcher
from lstmkit.version import __version__

# A character takes at most 12 bytes in JSON (an escaped surrogate pair, "\ud83d\ude00").
JSON_BYTES_PER_CHAR = 12


@dataclass(frozen=True)
class ServeSettings:
    """What the server accepts and how it batches.

    max_texts: texts per predict request; max_chars: characters per text (413 beyond either).
    max_batch: texts per model call; max_wait_ms: how long a batch waits to fill.
    api_key: when set, every request but GET / and GET /health must carry it.
    """

    max_texts: int = 256
    max_chars: int = 20_000
    max_batch: int = 64
    max_wait_ms: float = 5.0
    api_key: str | None = None

    @property
    def max_body_bytes(self):
        """The largest body that can hold max_texts texts of max_chars characters, plus room for the rest."""
        return self.max_texts * (self.max_chars * JSON_BYTES_PER_CHAR + 16) + 4096

    def limits(self):
        return {k: v for k, v in asdict(self).items() if k != "api_key"}


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[StrictStr] = Field(min_length=1, description="the texts to label")
    top_k: int = Field(0, ge=0, strict=True, description="also list the K likeliest classes")


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: StrictStr = Field(description="the text to explain")
    label: StrictStr | None = Field(None, description="the class to explain (K > 1 outputs); default: the likeliest")


class ApiError(Exception):
    """An answer other than 200: its status, the request's field at fault, and what to do."""

    def __init__(self, status, field, message, headers=None):
        super().__init__(message)
        self.status, self.field, self.message, self.headers = status, field, message, headers


def check_label(model, label):
    """A label to explain must be one of the model's classes, and the model must have more than one output."""
    if label is None:
        return
    if model.n_outputs == 1:
        raise ApiError(422, "label", "a binary model's explanation is always of its second class; leave out label")
    if label not in (model.class_names or []):
        raise ApiError(422, "label", f"the model has no class {label!r}; its classes: {', '.join(model.class_names)}")


def error_response(status, field, message, headers=None):
    return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers)


def create_app(model, settings=ServeSettings(), *, model_info=None, on_ready=None):
    """The FastAPI app serving `model` (a text classifier with weights, e.g. `load_model(dir)`).

    model_info: extra entries for GET /v1/model (the config.json's, from `model_info`).
    on_ready: called once the model is warmed up, before the first request is answered.
    """
    if model.vectorizer is None or model.params is None:
        raise LstmkitError("lstmkit serve needs a trained text model (one with a vocabulary and weights)")
    names = model.class_names or [str(k) for k in range(max(2, model.n_outputs))]
    sizes, lengths = batch_shapes(model, settings.max_batch)

    def predict_rows(texts):
        """As `lstmkit predict`: the probabilities calibrated by the model's temperature."""
        if lengths:  # longest first, in batches of the compiled shapes
            return model.predict(texts, batch_size=sizes[-1], pad_lengths=lengths, pad_rows=sizes)
        batch = next((b for b in sizes if b >= len(texts)), sizes[-1])
        return model.predict(texts, batch_size=batch)

    def warm_up():
        """Compile every batch shape now, so that no request waits for XLA (the compile cache keeps them)."""
        for rows in sizes:
            for length in lengths or [1]:
                predict_rows(["x " * length] * rows)

    batcher = Batcher(predict_rows, max_batch=settings.max_batch, max_wait=settings.max_wait_ms / 1000)

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        await batcher.run(warm_up)
        if on_ready is not None:
            on_ready()
        yield
        await batcher.stop()  # uvicorn has answered every request in flight by now

    app = FastAPI(title="lstmkit", version=__version__, lifespan=lifespan)
    app.state.batcher = batcher
    _install_error_handlers(app)
    info = {"classes": names, "lstmkit_version": __version__, "limits": settings.limits(), **(model_info or {})}
    _add_info_routes(app, batcher, settings, info)
    _add_model_routes(app, model, batcher, settings, names)
    return app


def _add_info_routes(app, batcher, settings, info):
    """GET /health, GET / and GET /v1/model."""

    @app.get("/health")
    async def health():
        return {"status": "ok", "model_calls": batcher.model_calls, "texts": batcher.texts, "waiting": batcher.waiting}

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return resources.files("lstmkit.serve").joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/v1/model")
    async def model_details(request: Request):
        authorize(request, settings.api_key)
        return info


def _add_model_routes(app, model, batcher, settings, names):
    """POST /v1/predict (batched), POST /v1/explain and /v1/explain/page (on the model's thread)."""

    @app.post("/v1/predict")
    async def predict(request: Request):
        authorize(request, settings.api_key)
        body = await read_body(request, PredictRequest, settings)
        if len(body.texts) > settings.max_texts:
            raise ApiError(
                413, "texts", f"{len(body.texts)} texts, more than this server's {settings.max_texts} per request"
            )
        for i, text in enumerate(body.texts):
            check_length(text, f"texts.{i}", settings)
        proba = await batcher.predict(body.texts)  # this request's rows of a `Predictions`
        if proba.multi_label:
            rows = [label_set(chosen, p, names, body.top_k) for chosen, p in zip(proba.labels, proba.probabilities)]
            return JSONResponse({"predictions": rows})
        labels = [names.index(str(label)) for label in proba.labels]
        rows = [prediction(k, p, names, body.top_k) for k, p in zip(labels, proba.probabilities)]
        return JSONResponse({"predictions": rows})  # plain JSON already: skips FastAPI's encoder walk

    async def explained(request):
        authorize(request, settings.api_key)
        body = await read_body(request, ExplainRequest, settings)
        check_length(body.text, "text", settings)
        check_label(model, body.label)
        try:
            return await batcher.run(explain_text, model, body.text, body.label)
        except LstmkitError as e:  # the model is of a kind explain cannot read; no text would do
            raise ApiError(501, "model", str(e)) from None

    @app.post("/v1/explain")
    async def explain(request: Request):
        return await explained(request)

    @app.post("/v1/explain/page", response_class=HTMLResponse)
    async def explain_page(request: Request):
        return render_html(await explained(request))


def batch_shapes(model, max_batch):
    """The (rows, lengths) a batch is padded to: rows 1, 4, 16, ... up to max_batch, lengths 16,
    32, 64, ... up to the longest text the model reads. A request's texts pad to the next of each,
    so at most 4x the rows and 2x the steps are computed, and few shapes are ever compiled.

    >>> batch_shapes(seed_model, 64)     # 200 tokens
    ([1, 4, 16, 64], [16, 32, 64, 128, 200])
    """
    sizes = [1]
    while sizes[-1] * 4 < max_batch:
        sizes.append(sizes[-1] * 4)
    sizes += [max_batch] if max_batch > 1 else []
    longest = model.inference_length or model.vectorizer.output_sequence_length
    if not longest:  # a vectorizer without a length: the training buckets
        return sizes, None
    lengths = [min(16, longest)]
    while lengths[-1] < longest:
        lengths.append(min(2 * lengths[-1], longest))
    return sizes, lengths


def label_set(chosen, p, names, top_k):
    """A multi-label model's answer for one text: its labels (at their thresholds, likeliest first), every class's p."""
    row = {"labels": sorted(chosen, key=lambda name: -p[names.index(name)])}
    row.update(prediction(int(np.argmax(p)), p, names, top_k))
    del row["label"], row["probability"]  # a set has no one label
    return row


def prediction(k, p, names, top_k):
    """One text's answer from its label k and K probabilities p: the label, its probability, every class's."""
    row = {"label": names[k], "probability": float(p[k]), "probabilities": dict(zip(names, map(float, p)))}
    if top_k:
        order = sorted(range(len(names)), key=lambda j: -p[j])[:top_k]
        row["top_k"] = [{"label": names[j], "probability": float(p[j])} for j in order]
    return row


def authorize(request, api_key):
    """401 unless the request carries the key as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'."""
    if api_key is None:
        return
    given = request.headers.get("x-api-key")
    bearer = request.headers.get("authorization", "")
    if given is None and bearer[:7].lower() == "bearer ":
        given = bearer[7:].strip()
    if given is None or not hmac.compare_digest(given.encode(), api_key.encode()):
        raise ApiError(
            401,
            "authorization",
            "missing or wrong API key: send it as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def read_body(request, schema, settings):
    """The body parsed into `schema`; 413 past max_body_bytes (read no further), 400 not JSON,
    422 not the schema (the first wrong field named)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_body_bytes:
        raise ApiError(413, "body", f"a body of {int(declared)} bytes, more than {settings.max_body_bytes}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > settings.max_body_bytes:
            raise ApiError(413, "body", f"a body of more than {settings.max_body_bytes} bytes")
    try:
        return schema.model_validate_json(bytes(body))
    except ValidationError as e:
        first = e.errors()[0]
        if first["type"] == "json_invalid":
            raise ApiError(400, "body", f"the body is not JSON ({first['msg']}); send a JSON object") from None
        field = ".".join(map(str, first["loc"])) or "body"
        raise ApiError(422, field, f"{field}: {first['msg']}") from None


def check_length(text, field, settings):
    if len(text) > settings.max_chars:
        raise ApiError(
            413, field, f"{field} has {len(text)} characters, more than this server's {settings.max_chars} per text"
        )


def _install_error_handlers(app):
    """Every error as {"error", "field"}: ours, FastAPI's validation, and Starlette's 404 and 405."""

    @app.exception_handler(ApiError)
    async def api_error(request, e):
        return error_response(e.status, e.field, e.message, e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, e):
        first = e.errors()[0]
        field = ".".join(map(str, first["loc"]))
        return error_response(422, field, f"{field}: {first['msg']}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, e):
        return error_response(e.status_code, "path", str(e.detail), getattr(e, "headers", None))
