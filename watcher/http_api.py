"""The HTTP side of ``watch``: health, metrics and single-image matting on the daemon's own model.

FastAPI on uvicorn, in a thread of the daemon: the same session (so uploads and HTTP requests
share forward passes), the same pipeline and profiles as the watcher. Errors are JSON
``{"error": "..."}`` with the status a client can act on.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from engine.errors import GpuMemoryError, ImageError, ImageTooLarge
from engine.profile import Profile
from watcher.batch_tasks import FINISHED, BatchRefused, BatchTasks, allowed_dir
from watcher.errors import ConfigError, Deferred
from watcher.metrics import Metrics
from watcher.pipeline import Rendered
from watcher.threads import StoppableThread
from watcher.worker import JobContext

log = structlog.get_logger(__name__)


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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


def build_app(context: Callable[[], JobContext | None], health: Callable[[], Health], metrics: Metrics,
              token: str | None, max_body_bytes: int, max_pending: int, batch: BatchTasks | None = None,
              batch_roots: tuple[Path, ...] = ()) -> FastAPI:
    """The API; ``context`` is the daemon's current model + config (None while the model loads)."""
    app = FastAPI(title="unet-matting", docs_url=None, redoc_url=None, openapi_url=None)
    gate = Gate(max_pending)

    @app.exception_handler(HttpError)
    async def http_error(_request: Request, exc: HttpError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    def authorised(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HttpError(401, "missing or wrong bearer token")

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
    async def single(request: Request) -> Response:
        authorised(request)
        ctx = context()
        if ctx is None:
            raise HttpError(503, "the model is still loading; retry shortly")
        started = time.perf_counter()
        outcome, rendered = "error", None
        try:
            profile = _profile(ctx, request.query_params.get("profile") or request.query_params.get("scenario"))
            data, as_json = await _image_bytes(request, max_body_bytes)
            with gate:
                rendered = await _render(ctx, profile, data)
            outcome = "done"
        except HttpError as e:  # counted like the watcher's outcomes: busy or refused
            outcome = "rejected" if e.status == 429 else "refused"
            raise
        finally:
            metrics.finished(outcome, "http", time.perf_counter() - started,
                             rendered.timings_ms if rendered else None, time.time())
        return _reply(rendered, ctx, profile.name, as_json, request.query_params.get("output", "png"))

    @app.post("/api/matting/batch")
    async def submit_batch(request: Request) -> JSONResponse:
        authorised(request)
        ctx = context()
        if batch is None or ctx is None:
            raise HttpError(503, "batches are not available yet; retry shortly")
        try:
            payload = await request.json()
        except ValueError:
            raise HttpError(400, "the body must be JSON with input_dir and output_dir") from None
        if not isinstance(payload, dict):
            raise HttpError(400, "the body must be a JSON object with input_dir and output_dir")
        try:
            src = allowed_dir(payload.get("input_dir"), batch_roots, "input_dir", must_exist=True)
            out = allowed_dir(payload.get("output_dir"), batch_roots, "output_dir", must_exist=False)
        except BatchRefused as e:
            raise HttpError(e.status, str(e)) from None
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
            raise HttpError(409, f"task {task_id} is {task['status']}; its ZIP is ready when it finished")
        return FileResponse(batch.zip_path(task), media_type="application/zip", filename=f"{task_id}.zip")

    app.state.gate = gate
    return app


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
        form = await request.form()
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            raise HttpError(400, "no image: send the photo in the multipart field 'image'")
        return await upload.read(), False
    if kind == "application/json":
        return _from_json(await request.json()), True
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
    except ImageError as e:
        raise HttpError(415, f"not an image this service can process: {e}") from None
    except (GpuMemoryError, Deferred) as e:
        raise HttpError(503, f"{e}; retry shortly") from None


def _reply(rendered: Rendered, ctx: JobContext, profile: str, as_json: bool, output: str) -> Response:
    headers = {"X-Model": rendered.model or ctx.model_label, "X-Profile": profile}
    if as_json:
        body = {"png_base64": base64.b64encode(rendered.files[".png"]).decode(), "width": rendered.width,
                "height": rendered.height, "model": rendered.model or ctx.model_label, "profile": profile}
        if ".jpg" in rendered.files:
            body["jpg_base64"] = base64.b64encode(rendered.files[".jpg"]).decode()
        return JSONResponse(body, headers=headers)
    if output == "jpg":
        if ".jpg" not in rendered.files:
            raise HttpError(400, f"profile {profile} writes no JPEG (it has no flat_background)")
        return Response(rendered.files[".jpg"], media_type="image/jpeg", headers=headers)
    return Response(rendered.files[".png"], media_type="image/png", headers=headers)


def read_token(path: Path) -> str:
    """The bearer token from ``http.token_file`` (one line); unreadable or empty is a config error."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"http.token_file: cannot read {path}: {e.strerror or e}") from None
    if not token:
        raise ConfigError(f"http.token_file: {path} is empty")
    return token


class HttpServer(StoppableThread):
    """uvicorn serving the app in a daemon thread; ``stop`` asks it to finish and return."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        super().__init__("http")
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                lifespan="off", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.gate: Gate | None = None

    def run_once(self) -> None:
        self.server.run()
        self.stopped.set()

    def stop(self) -> None:
        self.server.should_exit = True
        super().stop()

    def wait_started(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.server.started and self.is_alive():
            time.sleep(0.02)
        return self.server.started
