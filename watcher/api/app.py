"""The HTTP side of ``watch``: health, metrics and single-image matting on the daemon's own model.

FastAPI on uvicorn, in a thread of the daemon: the same session (so uploads and HTTP requests
share forward passes), the same pipeline and profiles as the watcher. Errors are JSON
``{"error": "..."}`` with the status a client can act on, the framework's own 404/405 included.
The token, body limit and batch roots are read per request from ``access()``, so a reload that
changes them applies at once. A connection must deliver its whole request within
``http.request_timeout_s`` (a trickling client is cut off; requests in progress are not).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect

from unet_matting.engine.errors import GpuMemoryError, ImageError, ImageTooLarge, NoProduct
from unet_matting.engine.profile import Profile
from unet_matting.watcher.api.batches import FINISHED, BatchRefused, BatchTasks, allowed_dir, overlap
from unet_matting.watcher.errors import ConfigError, Deferred
from unet_matting.watcher.processing.pipeline import Rendered
from unet_matting.watcher.processing.runner import JobContext
from unet_matting.watcher.prometheus import Metrics

log = structlog.get_logger(__name__)


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


OUTPUTS = ("png", "jpg")  # ?output=


@dataclass(frozen=True)
class Access:
    """What each request is checked against; the daemon swaps the whole value on reload."""

    token: str | None
    max_body_bytes: int
    batch_roots: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Health:
    """What ``/health`` reports: ok, or the reason it is not."""

    ok: bool
    reason: str
    details: dict


class Gate:
    """At most ``limit`` requests in the pipeline at once; the next gets 429 (no unbounded queue)."""

    def __init__(self, limit: int) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self.busy = 0

    def __enter__(self) -> Gate:
        if not self._slots.acquire(blocking=False):
            raise HttpError(429, "too many requests in progress; retry shortly")
        self.busy += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.busy -= 1
        self._slots.release()


def build_app(
    context: Callable[[], JobContext | None],
    health: Callable[[], Health],
    metrics: Metrics,
    access: Callable[[], Access],
    max_pending: int,
    batch: BatchTasks | None = None,
) -> FastAPI:
    """The API; ``context`` is the daemon's current model + config (None while the model loads)."""
    app = FastAPI(title="unet-matting", docs_url=None, redoc_url=None, openapi_url=None)
    gate = Gate(max_pending)

    @app.exception_handler(HttpError)
    async def http_error(_request: Request, exc: HttpError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def framework_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {404: "no such endpoint", 405: "method not allowed on this endpoint"}.get(
            exc.status_code, str(exc.detail)
        )
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, _exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "the request is not what this endpoint expects"}, status_code=400)

    def authorised(request: Request) -> Access:
        current = access()
        if current.token is None:
            return current
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), current.token.encode()):
            raise HttpError(401, "missing or wrong bearer token")
        return current

    @app.get("/health")
    def get_health() -> JSONResponse:
        state = health()
        body = {"status": "ok" if state.ok else "unavailable", **state.details}
        if not state.ok:
            body["reason"] = state.reason
        return JSONResponse(body, status_code=200 if state.ok else 503)

    @app.get("/metrics")
    def get_metrics(request: Request) -> Response:
        authorised(request)
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/api/matting/single")
    @app.post("/api/matting/figma")  # the guide's path for design tools: the same request and answer
    async def single(request: Request) -> Response:
        limits = authorised(request)
        ctx = context()
        if ctx is None:
            raise HttpError(503, "the model is still loading; retry shortly")
        started = time.perf_counter()
        outcome, rendered = "error", None
        try:
            profile, output = _choices(ctx, request)
            data, as_json = await _image_bytes(request, limits.max_body_bytes)
            with gate:
                rendered = await _render(ctx, profile, data)
            outcome = "done"
        except ClientDisconnect:  # the client went away mid-body: nobody to answer, nothing went wrong here
            outcome = "aborted"
            log.info("http_client_aborted", path=request.url.path)
            return Response(status_code=400)
        except HttpError as e:  # counted like the watcher's outcomes: busy or refused
            outcome = "rejected" if e.status == 429 else "refused"
            raise
        finally:
            metrics.finished(
                outcome, "http", time.perf_counter() - started, rendered.timings_ms if rendered else None, time.time()
            )
        return _reply(rendered, ctx, profile.name, as_json, output)

    @app.post("/api/matting/batch")
    async def submit_batch(request: Request) -> JSONResponse:
        roots = authorised(request).batch_roots
        ctx = context()
        if batch is None or ctx is None:
            raise HttpError(503, "batches are not available yet; retry shortly")
        payload = _json(await request.body(), "the body must be JSON with input_dir and output_dir")
        if not isinstance(payload, dict):
            raise HttpError(400, "the body must be a JSON object with input_dir and output_dir")
        try:
            src = allowed_dir(payload.get("input_dir"), roots, "input_dir", must_exist=True)
            out = allowed_dir(payload.get("output_dir"), roots, "output_dir", must_exist=False)
        except BatchRefused as e:
            raise HttpError(e.status, str(e)) from None
        if (problem := overlap(src, out)) is not None:
            raise HttpError(400, problem)
        task = batch.submit(src, out, _profile(ctx, payload.get("profile")).name)
        return JSONResponse({"task_id": task["id"], "status": "submitted"}, status_code=202)

    def known_task(task_id: str, request: Request) -> dict:
        authorised(request)
        task = batch.get(task_id) if batch is not None else None
        if task is None:
            raise HttpError(404, f"no task {task_id}")
        return task

    @app.get("/api/matting/task/{task_id}")
    def task_status(task_id: str, request: Request) -> JSONResponse:
        return JSONResponse(batch.status(known_task(task_id, request)))

    @app.get("/download/{task_id}.zip")
    def download(task_id: str, request: Request) -> FileResponse:
        task = known_task(task_id, request)
        if task["status"] not in FINISHED:
            raise HttpError(409, f"task {task_id} is {task['status']}; its ZIP is ready once the task has ended")
        return FileResponse(batch.zip_path(task), media_type="application/zip", filename=f"{task_id}.zip")

    app.state.gate = gate
    return app


def _choices(ctx: JobContext, request: Request) -> tuple[Profile, str]:
    """The profile (``profile`` or its alias ``scenario``; both, naming different ones: 400) and
    the output (``png`` or ``jpg``; anything else: 400)."""
    query = request.query_params
    named = {query[k] for k in ("profile", "scenario") if query.get(k)}
    if len(named) > 1:
        raise HttpError(
            400,
            f"profile={query['profile']} and scenario={query['scenario']} disagree; "
            "give one of them (scenario is another name for profile)",
        )
    output = query.get("output", "png").lower()
    if output not in OUTPUTS:
        raise HttpError(400, f"output={query['output']} is not offered; choose one of: {', '.join(OUTPUTS)}")
    return _profile(ctx, next(iter(named), None)), output


def _json(body: bytes, message: str) -> Any:
    """The body parsed as JSON; malformed JSON is a 400 with ``message``."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # JSONDecodeError, bad UTF-8, absurd nesting
        raise HttpError(400, f"{message}; the JSON could not be parsed") from None


def _profile(ctx: JobContext, name: str | None) -> Profile:
    """The named profile (default: the configured one); an unknown name is a 400 listing the valid ones."""
    try:
        return ctx.config.get_profile(name)
    except ConfigError as e:
        raise HttpError(400, str(e)) from None


async def _image_bytes(request: Request, limit: int) -> tuple[bytes, bool]:
    """The upload: multipart field ``image``, a JSON ``image_base64``, or the raw body."""
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit:
        raise HttpError(413, f"request body of {declared} bytes exceeds http.max_body_bytes = {limit}")
    body = await request.body()
    if len(body) > limit:
        raise HttpError(413, f"request body exceeds http.max_body_bytes = {limit}")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        try:
            form = await request.form()
        except (MultiPartException, StarletteHTTPException):  # no boundary, truncated parts
            raise HttpError(
                400, "the multipart body could not be parsed; send the photo in the field 'image'"
            ) from None
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            raise HttpError(400, "no image: send the photo in the multipart field 'image'")
        return await upload.read(), False
    if kind == "application/json":
        return _from_json(_json(body, "the JSON body needs a string field 'image_base64'")), True
    if not body:
        raise HttpError(400, "no image: send it as multipart field 'image', JSON image_base64 or the raw body")
    return body, False


def _from_json(payload: Any) -> bytes:
    if not isinstance(payload, dict) or not isinstance(payload.get("image_base64"), str):
        raise HttpError(400, "no image: the JSON body needs a string field 'image_base64'")
    try:
        return base64.b64decode(payload["image_base64"], validate=True)
    except (binascii.Error, ValueError):
        raise HttpError(400, "image_base64 is not valid base64") from None


async def _render(ctx: JobContext, profile: Profile, data: bytes) -> Rendered:
    from starlette.concurrency import run_in_threadpool

    try:
        return await run_in_threadpool(ctx.render, data, profile, f"http-{uuid.uuid4().hex[:20]}", "http request")
    except ImageTooLarge as e:
        raise HttpError(413, str(e)) from None
    except NoProduct as e:
        raise HttpError(422, str(e)) from None
    except ImageError as e:
        raise HttpError(415, f"not an image this service can process: {e}") from None
    except (GpuMemoryError, Deferred) as e:
        raise HttpError(503, f"{e}; retry shortly") from None


def _reply(rendered: Rendered, ctx: JobContext, profile: str, as_json: bool, output: str) -> Response:
    headers = {"X-Model": rendered.model or ctx.model_label, "X-Profile": profile}
    if as_json:
        body = {
            "png_base64": base64.b64encode(rendered.files[".png"]).decode(),
            "width": rendered.width,
            "height": rendered.height,
            "model": rendered.model or ctx.model_label,
            "profile": profile,
        }
        if ".jpg" in rendered.files:
            body["jpg_base64"] = base64.b64encode(rendered.files[".jpg"]).decode()
        return JSONResponse(body, headers=headers)
    if output == "jpg":
        if ".jpg" not in rendered.files:
            raise HttpError(400, f"profile {profile} writes no JPEG (it has no flat_background)")
        return Response(rendered.files[".jpg"], media_type="image/jpeg", headers=headers)
    return Response(rendered.files[".png"], media_type="image/png", headers=headers)
