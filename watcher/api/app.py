"""The HTTP side of ``watch``: health, metrics, single-image matting and batches on the daemon's
own model.

FastAPI on uvicorn, in a thread of the daemon: the same session (so uploads and HTTP requests
share forward passes), the same pipeline and profiles as the watcher. One router per concern
(``health_routes`` here, ``watcher.api.matting``, ``watcher.api.tasks``); authentication, the
model and the limits are dependencies. Errors are JSON ``{"error": "..."}`` with the status a
client can act on, the framework's own 404/405 included. The token, body limit and batch roots
are read per request from ``access()``, so a reload that changes them applies at once.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from unet_matting.engine.profile import Profile
from unet_matting.watcher.api.batches import BatchTasks
from unet_matting.watcher.errors import ConfigError
from unet_matting.watcher.processing.runner import JobContext
from unet_matting.watcher.prometheus import Metrics
from unet_matting.watcher.review.queue import ReviewQueue


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Access:
    """What each request is checked against; the daemon swaps the whole value on reload."""

    token: str | None
    max_body_bytes: int
    batch_roots: tuple[Path, ...] = ()
    reviewer_token: str | None = None  # reaches the review page's API only


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


@dataclass(frozen=True)
class Service:
    """What the routes work with, one per app (``app.state.service``)."""

    context: Callable[[], JobContext | None]  # the daemon's current model + config; None while loading
    health: Callable[[], Health]
    metrics: Metrics
    access: Callable[[], Access]
    gate: Gate
    batch: BatchTasks | None
    review: Callable[[], ReviewQueue] | None = None  # the held cut-outs (None: no review routes)


def service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(service)]


def authorised(request: Request, svc: ServiceDep) -> Access:
    """The request's limits, once its bearer token is right (the scheme in any case, RFC 9110)."""
    current = svc.access()
    if current.token is None:
        return current
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), current.token.encode()):
        raise HttpError(401, "missing or wrong bearer token")
    return current


def loaded(svc: ServiceDep) -> JobContext:
    """The model and config a request runs with; 503 while the model loads."""
    ctx = svc.context()
    if ctx is None:
        raise HttpError(503, "the model is still loading; retry shortly")
    return ctx


def parsed_json(body: bytes, message: str) -> Any:
    """The body parsed as JSON; malformed JSON is a 400 with ``message``."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # JSONDecodeError, bad UTF-8, absurd nesting
        raise HttpError(400, f"{message}; the JSON could not be parsed") from None


def named_profile(ctx: JobContext, name: str | None) -> Profile:
    """The named profile (default: the configured one); an unknown name is a 400 listing the valid ones."""
    try:
        return ctx.config.get_profile(name)
    except ConfigError as e:
        raise HttpError(400, str(e)) from None


AccessDep = Annotated[Access, Depends(authorised)]  # the token checked; the request's limits
ContextDep = Annotated[JobContext, Depends(loaded)]

health_routes = APIRouter()


@health_routes.get("/health")
def get_health(svc: ServiceDep) -> JSONResponse:
    state = svc.health()
    body = {"status": "ok" if state.ok else "unavailable", **state.details}
    if not state.ok:
        body["reason"] = state.reason
    return JSONResponse(body, status_code=200 if state.ok else 503)


@health_routes.get("/metrics", dependencies=[Depends(authorised)])
def get_metrics(svc: ServiceDep) -> Response:
    return Response(svc.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


def build_app(
    context: Callable[[], JobContext | None],
    health: Callable[[], Health],
    metrics: Metrics,
    access: Callable[[], Access],
    max_pending: int,
    batch: BatchTasks | None = None,
    review: Callable[[], ReviewQueue] | None = None,
) -> FastAPI:
    """The API; ``context`` is the daemon's current model + config (None while the model loads)."""
    from unet_matting.watcher.api.matting import matting_routes
    from unet_matting.watcher.api.review import review_routes
    from unet_matting.watcher.api.tasks import task_routes

    app = FastAPI(title="unet-matting", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = Service(context, health, metrics, access, Gate(max_pending), batch, review)
    app.state.gate = app.state.service.gate
    app.add_exception_handler(HttpError, _http_error)
    app.add_exception_handler(StarletteHTTPException, _framework_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    for router in (health_routes, matting_routes, task_routes, review_routes):
        app.include_router(router)
    return app


async def _http_error(_request: Request, exc: HttpError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)


async def _framework_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    messages = {404: "no such endpoint", 405: "method not allowed on this endpoint"}
    return JSONResponse(
        {"error": messages.get(exc.status_code, str(exc.detail))}, status_code=exc.status_code, headers=exc.headers
    )


async def _invalid_request(_request: Request, _exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"error": "the request is not what this endpoint expects"}, status_code=400)
