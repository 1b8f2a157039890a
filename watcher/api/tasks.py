"""Batch endpoints: submit a folder (``POST /api/matting/batch``), poll the task, download its ZIP."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse

from unet_matting.watcher.api.app import AccessDep, HttpError, ServiceDep, named_profile, parsed_json
from unet_matting.watcher.api.batches import FINISHED, BatchRefused, allowed_dir, overlap

task_routes = APIRouter()


@task_routes.post("/api/matting/batch")
async def submit_batch(request: Request, limits: AccessDep, svc: ServiceDep) -> JSONResponse:
    ctx = svc.context()
    if svc.batch is None or ctx is None:
        raise HttpError(503, "batches are not available yet; retry shortly")
    payload = parsed_json(await request.body(), "the body must be JSON with input_dir and output_dir")
    if not isinstance(payload, dict):
        raise HttpError(400, "the body must be a JSON object with input_dir and output_dir")
    try:
        src = allowed_dir(payload.get("input_dir"), limits.batch_roots, "input_dir", must_exist=True)
        out = allowed_dir(payload.get("output_dir"), limits.batch_roots, "output_dir", must_exist=False)
    except BatchRefused as e:
        raise HttpError(e.status, str(e)) from None
    if (problem := overlap(src, out)) is not None:
        raise HttpError(400, problem)
    callback = payload.get("callback")
    if callback is not None and (not isinstance(callback, str) or ctx.config.events.endpoint(callback) is None):
        named = ", ".join(e.name for e in ctx.config.events.endpoints) or "none is configured"
        raise HttpError(
            400, f"callback must name an endpoint of events.endpoints ({named}); a URL is never taken from a request"
        )
    task = svc.batch.submit(src, out, named_profile(ctx, payload.get("profile")).name, callback)
    return JSONResponse({"task_id": task["id"], "status": "submitted"}, status_code=202)


def known_task(task_id: str, _access: AccessDep, svc: ServiceDep) -> dict:
    """The recorded task ``task_id`` (after the token check); 404 when there is none."""
    task = svc.batch.get(task_id) if svc.batch is not None else None
    if task is None:
        raise HttpError(404, f"no task {task_id}")
    return task


TaskDep = Annotated[dict, Depends(known_task)]


@task_routes.get("/api/matting/task/{task_id}")
def task_status(task: TaskDep, svc: ServiceDep) -> JSONResponse:
    return JSONResponse(svc.batch.status(task))


@task_routes.get("/download/{task_id}.zip")
def download(task: TaskDep, svc: ServiceDep) -> FileResponse:
    if task["status"] not in FINISHED:
        raise HttpError(409, f"task {task['id']} is {task['status']}; its ZIP is ready once the task has ended")
    return FileResponse(svc.batch.zip_path(task), media_type="application/zip", filename=f"{task['id']}.zip")
