"""``POST /api/matting/single`` (and the guide's ``/api/matting/figma``): one photo in, its
cut-out back as PNG, JPEG or JSON with base64 (the answer follows the request's form)."""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect

from unet_matting.engine.errors import GpuMemoryError, ImageError, ImageTooLarge, NoProduct
from unet_matting.engine.profile import Profile
from unet_matting.watcher.api.app import AccessDep, ContextDep, HttpError, ServiceDep, named_profile, parsed_json
from unet_matting.watcher.errors import Deferred, RenderStopped
from unet_matting.watcher.processing.pipeline import Rendered
from unet_matting.watcher.processing.runner import JobContext
from unet_matting.watcher.processing.validation import summary

log = structlog.get_logger(__name__)
OUTPUTS = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}  # ?output= and its media type
matting_routes = APIRouter()


@matting_routes.post("/api/matting/single")
@matting_routes.post("/api/matting/figma")  # the guide's path for design tools: the same request and answer
async def single(
    request: Request,
    limits: AccessDep,
    ctx: ContextDep,
    svc: ServiceDep,
) -> Response:
    started = time.perf_counter()
    outcome, rendered = "error", None
    try:
        profile, output = _choices(ctx, request)
        data, as_json = await _image_bytes(request, limits.max_body_bytes)
        with svc.gate:
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
        timings = rendered.timings_ms if rendered else None
        svc.metrics.finished(outcome, "http", time.perf_counter() - started, timings, time.time())
    return _reply(rendered, ctx, profile, as_json, output)


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
    return named_profile(ctx, next(iter(named), None)), output


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
        return await _multipart_image(request), False
    if kind == "application/json":
        return _from_json(parsed_json(body, "the JSON body needs a string field 'image_base64'")), True
    if not body:
        raise HttpError(400, "no image: send it as multipart field 'image', JSON image_base64 or the raw body")
    return body, False


async def _multipart_image(request: Request) -> bytes:
    try:
        form = await request.form()
    except (MultiPartException, StarletteHTTPException):  # no boundary, truncated parts
        raise HttpError(400, "the multipart body could not be parsed; send the photo in the field 'image'") from None
    upload = form.get("image")
    if upload is None or isinstance(upload, str):
        raise HttpError(400, "no image: send the photo in the multipart field 'image'")
    return await upload.read()


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
    except (GpuMemoryError, Deferred, RenderStopped) as e:
        raise HttpError(503, f"{e}; retry shortly") from None


def _reply(rendered: Rendered, ctx: JobContext, profile: Profile, as_json: bool, output: str) -> Response:
    headers = {"X-Model": rendered.model or ctx.model_label, "X-Profile": profile.name}
    judged = rendered.confidence
    if judged is not None:  # held or not: the caller decides itself
        headers["X-Confidence"] = f"{judged.score:.4f}"
        headers["X-Review-Reasons"] = "; ".join(judged.reasons)
    if as_json:
        body: dict[str, Any] = {
            f"{kind}_base64": base64.b64encode(data).decode()
            for kind in OUTPUTS
            if (data := first_file(rendered, profile, kind)) is not None
        }
        body |= {
            "width": rendered.width,
            "height": rendered.height,
            "model": rendered.model or ctx.model_label,
            "profile": profile.name,
        }
        if judged is not None:
            body |= {"confidence": judged.score, "reasons": list(judged.reasons)}
        if rendered.validation is not None:
            body["validation"] = summary(rendered.validation)
        return JSONResponse(body, headers=headers)
    data = first_file(rendered, profile, output)
    if data is None:
        raise HttpError(
            400, f"profile {profile.name} writes no {output.upper()} file; choose another output or profile"
        )
    return Response(data, media_type=OUTPUTS[output], headers=headers)


FORMAT_OF = {"png": "png", "jpg": "jpeg", "webp": "webp"}


def first_file(rendered: Rendered, profile: Profile, kind: str) -> bytes | None:
    """The set's first file of a kind (``png``: the cut-out, never the bare mask)."""
    for rendition in profile.outputs:
        if rendition.format == FORMAT_OF[kind] and rendition.suffix in rendered.files:
            return rendered.files[rendition.suffix]
    return None
