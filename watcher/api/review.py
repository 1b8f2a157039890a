"""The review page and its API: held cut-outs as a grid, approve / reject / retry.

``GET /review`` is the page itself: static HTML with a little JavaScript, no build step, no CDN.
It holds no data, so it needs no token; it asks for one (the bearer token, or the reviewer
token, kept in the tab's session storage) and everything it shows comes through the API,
which checks it on every request:

- ``GET /api/review/cards?page=N``: one page of held items, rendered here as HTML cards;
- ``GET /api/review/items/<id>/thumb/<before|checker|white>``: JPEG thumbnails, made once and
  cached in ``paths.state/review-thumbs`` (a new version of the item makes new ones; those
  older than ``THUMB_MAX_AGE_S`` go as new ones are made);
- ``POST /api/review/items/<id>/approve|reject|retry``: the decisions (JSON body: ``reason``
  for reject, ``profile`` and ``model`` for retry), carried out by ``watcher.review.queue``.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import io
import math
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image

from unet_matting.engine.canvas import flatten
from unet_matting.engine.errors import UnetMattingError
from unet_matting.watcher.api.app import ContextDep, HttpError, ServiceDep, named_profile, parsed_json
from unet_matting.watcher.durable import atomic_write
from unet_matting.watcher.processing.runner import JobContext
from unet_matting.watcher.processing.sheet import checkerboard
from unet_matting.watcher.review.queue import Held, ReviewError, ReviewQueue, archived_original, rerendering

PER_PAGE = 24
THUMB_SIDE = 256
THUMB_KINDS = ("before", "checker", "white")
THUMB_MAX_AGE_S = 14 * 86400  # thumbnails older than this are made again if still wanted
review_routes = APIRouter()
_page_html: str | None = None


def reviewer(request: Request, svc: ServiceDep) -> str:
    """Who decides: ``api`` (the bearer token), ``reviewer`` (the reviewer token) or
    ``anonymous`` (no token configured); a wrong or missing token is a 401."""
    current = svc.access()
    if current.token is None and current.reviewer_token is None:
        return "anonymous"
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        for name, token in (("api", current.token), ("reviewer", current.reviewer_token)):
            if token is not None and hmac.compare_digest(given.strip().encode(), token.encode()):
                return name
    raise HttpError(401, "missing or wrong bearer token")


ReviewerDep = Annotated[str, Depends(reviewer)]


def queue_of(svc: ServiceDep) -> ReviewQueue:
    if svc.review is None:
        raise HttpError(404, "no such endpoint")
    return svc.review()


QueueDep = Annotated[ReviewQueue, Depends(queue_of)]


def _decided(call, *args: Any) -> Any:
    try:
        return call(*args)
    except ReviewError as e:
        raise HttpError(e.status, str(e)) from None


@review_routes.get("/review")
def page() -> HTMLResponse:
    global _page_html
    if _page_html is None:
        _page_html = resources.files("unet_matting.watcher.review").joinpath("page/review.html").read_text("utf-8")
    return HTMLResponse(_page_html, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})


@review_routes.get("/api/review/cards")
def cards(request: Request, by: ReviewerDep, queue: QueueDep, svc: ServiceDep) -> HTMLResponse:
    del by
    held = queue.items()
    pages = max(1, math.ceil(len(held) / PER_PAGE))
    try:
        number = min(max(1, int(request.query_params.get("page", "1"))), pages)
    except ValueError:
        raise HttpError(400, "page must be a whole number") from None
    shown = held[(number - 1) * PER_PAGE : number * PER_PAGE]
    ctx = svc.context()
    profiles = sorted(ctx.config.profiles) if ctx is not None else []
    body = "".join(_card(item, profiles) for item in shown) or '<p class="empty">Nothing is held for review.</p>'
    headers = {"X-Total": str(len(held)), "X-Page": str(number), "X-Pages": str(pages), "Cache-Control": "no-store"}
    return HTMLResponse(body, headers=headers)


@review_routes.get("/api/review/items/{item:path}/thumb/{kind}")
def thumb(item: str, kind: str, by: ReviewerDep, queue: QueueDep, svc: ServiceDep) -> Response:
    del by
    if kind not in THUMB_KINDS:
        raise HttpError(404, f"no thumbnail {kind}; one of: {', '.join(THUMB_KINDS)}")
    held = _decided(queue.get, item)
    data = _thumbnail(held, kind, queue.state, svc)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@review_routes.post("/api/review/items/{item:path}/approve")
def approve(item: str, by: ReviewerDep, queue: QueueDep) -> JSONResponse:
    published = _decided(queue.approve, item, by)
    return JSONResponse({"item": item, "decision": "approve", "by": by, "published": [p.name for p in published]})


@review_routes.post("/api/review/items/{item:path}/reject")
async def reject(item: str, request: Request, by: ReviewerDep, queue: QueueDep) -> JSONResponse:
    body = await _json_body(request)
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise HttpError(400, "reason must be a string")
    from starlette.concurrency import run_in_threadpool

    target = await run_in_threadpool(_decided, queue.reject, item, by, reason[:500])
    return JSONResponse({"item": item, "decision": "reject", "by": by, "quarantined_as": target.name})


@review_routes.post("/api/review/items/{item:path}/retry")
async def retry(item: str, request: Request, by: ReviewerDep, queue: QueueDep, ctx: ContextDep) -> JSONResponse:
    body = await _json_body(request)
    profile = named_profile(ctx, body.get("profile") if isinstance(body.get("profile"), str) else None)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise HttpError(400, "model must be a catalogue name")
    from starlette.concurrency import run_in_threadpool

    again = await run_in_threadpool(_decided, queue.retry, item, by, rerendering(_context_with(ctx, model), profile))
    record = again.record
    return JSONResponse(
        {
            "item": item,
            "decision": "retry",
            "by": by,
            "profile": profile.name,
            "model": record.get("model"),
            "score": record.get("score"),
            "reasons": record.get("reasons"),
        }
    )


async def _json_body(request: Request) -> dict:
    raw = await request.body()
    if not raw:
        return {}
    body = parsed_json(raw, "the body must be a JSON object")
    if not isinstance(body, dict):
        raise HttpError(400, "the body must be a JSON object")
    return body


_sessions: dict[Path, Any] = {}
_sessions_lock = threading.Lock()


def _context_with(ctx: JobContext, model: str | None) -> JobContext:
    """What a retry renders with: the daemon's own model, or a catalogue model loaded for
    retries (one at a time) when ``model`` names another installed one."""
    if model is None:
        return ctx
    from unet_matting.watcher.models.active import load_session, named_model
    from unet_matting.watcher.processing.matting import LocalMatting

    cfg = ctx.config
    try:
        path = named_model(cfg.engine.models_dir, model)
    except UnetMattingError as e:  # unknown or not installed: one sentence from the catalogue
        raise HttpError(400, str(e)) from None
    with _sessions_lock:
        if path not in _sessions:
            _sessions.clear()
            _sessions[path] = load_session(cfg.engine, path)
        session = _sessions[path]
    return JobContext(LocalMatting(session), cfg)


def _thumbnail(held: Held, kind: str, state: Path, svc) -> bytes:
    """The item's thumbnail of ``kind``, made once per version of the item."""
    version = held.record_path.stat().st_mtime_ns
    key = hashlib.sha256(f"{held.id}\0{version}\0{kind}".encode()).hexdigest()[:32]
    cached = state / "review-thumbs" / f"{key}.jpg"
    try:
        return cached.read_bytes()
    except FileNotFoundError:
        pass
    if kind == "before":
        ctx = svc.context()
        archive = ctx.config.paths.archive if ctx is not None else None
        try:
            source = Image.open(io.BytesIO(archived_original(held, archive))) if archive else None
        except ReviewError:
            source = None
        rgb = np.asarray(_small(source.convert("RGB")) if source else Image.new("RGB", (THUMB_SIDE, THUMB_SIDE), 200))
    else:
        rgba = np.asarray(_small(Image.open(held.file(held.main)).convert("RGBA")))
        background = checkerboard(*rgba.shape[:2], square=8) if kind == "checker" else (255, 255, 255)
        rgb = flatten(rgba, background)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=85)
    data = out.getvalue()
    prune_thumbnails(cached.parent)
    atomic_write(cached, data)
    return data


def prune_thumbnails(folder: Path, max_age_s: float = THUMB_MAX_AGE_S) -> int:
    """Remove thumbnails not made for ``max_age_s`` (decided items', old versions'); returns how
    many. Run when a thumbnail is made, so the cache stays the size of what reviewers look at."""
    removed, now = 0, time.time()
    for path in folder.glob("*.jpg") if folder.is_dir() else ():
        try:
            if now - path.stat().st_mtime > max_age_s:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def _small(image: Image.Image) -> Image.Image:
    image.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.LANCZOS)
    return image


def _card(item: Held, profiles: list[str]) -> str:
    r = item.record
    esc = html.escape
    score = r.get("score")
    reasons = r.get("reasons") or []
    options = "".join(
        f'<option value="{esc(p)}"{" selected" if p == r.get("profile") else ""}>{esc(p)}</option>' for p in profiles
    )
    thumbs = "".join(
        f'<figure><img alt="{k}" data-thumb="{k}"><figcaption>{label}</figcaption></figure>'
        for k, label in (("before", "before"), ("checker", "after"), ("white", "on white"))
    )
    return (
        f'<article class="card" tabindex="0" data-item="{esc(item.id)}">'
        f'<header><b>{esc(item.id)}</b> <span class="score">'
        f"{'-' if score is None else f'{score:.2f}'}</span></header>"
        f'<div class="thumbs">{thumbs}</div>'
        f'<p class="reasons">{esc("; ".join(reasons)) or "no reason named"}</p>'
        f'<p class="meta">{esc(str(r.get("profile")))} · {esc(str(r.get("model")))} · {esc(str(r.get("time")))}</p>'
        f'<div class="actions"><button class="approve">Approve (a)</button>'
        f'<button class="reject">Reject (r)</button>'
        f'<select class="profile" aria-label="profile for retry">{options}</select>'
        f'<button class="retry">Retry (t)</button></div>'
        f'<p class="status" role="status"></p></article>'
    )
