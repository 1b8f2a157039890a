"""The RabbitMQ side shared by the watcher and the workers: the Celery app, the queues, and the
two messages (a job, its answer).

Topology (declared identically by both sides, so either may start first):

- ``queue.jobs``: a durable **quorum** queue; jobs are persistent messages published with
  publisher confirms. Workers take one at a time per thread (prefetch 1) and acknowledge only
  after the answer is published (late acks); a worker that dies returns its jobs to the queue.
  RabbitMQ counts the deliveries of each job: after ``queue.max_deliveries`` it dead-letters it.
- ``unet-matting.dlx``: a fanout exchange for those jobs: a copy stays in ``queue.dead`` for the
  operator, and one goes to every watcher's results queue, where the waiting upload learns its
  fate and is quarantined.
- ``queue.results`` (per watcher host): durable; workers publish each answer there
  (``reply_to``), persistent and confirmed.

Image bytes travel in the job message: workers need no shared file system, and the watcher
stays the only writer of outputs, archive and quarantine. A job's id is derived from the upload
(path, size, mtime, inode), so a job sent twice (a restart, a time-out) has one id in every log
line on every host, and its outputs are the same bytes.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Mapping
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from unet_matting.engine.profile import Profile, Rendition, Rules, Shadow
from unet_matting.watcher.config import QueueConfig

TASK = "unet_matting.render"
DEAD_LETTER_EXCHANGE = "unet-matting.dlx"
# RabbitMQ refuses messages over max_message_size (128 MiB by default); an upload this large is
# quarantined with that reason instead of being sent again forever
MAX_MESSAGE_BYTES = 100_000_000


def results_queue_name(cfg: QueueConfig) -> str:
    return cfg.results or f"unet-matting.results.{socket.gethostname()}"


def dead_letters() -> Exchange:
    return Exchange(DEAD_LETTER_EXCHANGE, type="fanout", durable=True)


def jobs_queue(cfg: QueueConfig) -> Queue:
    exchange = Exchange(cfg.jobs, type="direct", durable=True)
    return Queue(
        cfg.jobs,
        exchange,
        routing_key=cfg.jobs,
        durable=True,
        queue_arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": cfg.max_deliveries - 1,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        },
    )


def dead_queue(cfg: QueueConfig) -> Queue:
    """Dead jobs kept for the operator (bounded: the oldest go first past 10,000)."""
    return Queue(
        cfg.dead, dead_letters(), durable=True, queue_arguments={"x-max-length": 10_000, "x-overflow": "drop-head"}
    )


def results_queue(name: str) -> Queue:
    """A watcher's answers queue (``results_queue_name``), and a copy of every dead-lettered job
    (the fanout binding); workers declare it by the name a job's ``reply_to`` carries."""
    return Queue(name, dead_letters(), durable=True)


def make_app(cfg: QueueConfig, name: str = "unet-matting") -> Celery:
    """A Celery app on ``cfg.broker_url`` with the delivery guarantees above."""
    app = Celery(name, broker=cfg.broker_url, set_as_current=False)
    app.conf.update(
        task_queues=[jobs_queue(cfg)],
        task_default_queue=cfg.jobs,
        task_routes={TASK: {"queue": cfg.jobs, "routing_key": cfg.jobs}},
        task_serializer="msgpack",
        accept_content=["msgpack"],
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,  # a job that raised was answered (see commands.worker)
        task_default_delivery_mode="persistent",
        worker_prefetch_multiplier=1,
        worker_detect_quorum_queues=True,  # per-consumer prefetch (quorum queues have no global QoS)
        worker_cancel_long_running_tasks_on_connection_loss=True,  # their jobs are redelivered anyway
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        broker_transport_options={"confirm_publish": True},
        broker_connection_retry_on_startup=True,
        broker_heartbeat=10,  # also how often a blocked consumer sees SIGTERM: stops take ~heartbeat/3
        broker_connection_timeout=5,
        broker_pool_limit=16,
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.5, "interval_step": 1, "interval_max": 2},
    )
    return app


# ---- the two messages ------------------------------------------------------------------------


def job_message(job: str, file: str, profile: Profile, data: bytes, max_pixels: int, png_level: int) -> dict:
    """A job's keyword arguments: everything a worker needs, the profile by value (workers
    need no copy of the watcher's profiles.yaml)."""
    return {
        "job": job,
        "file": file,
        "profile": dataclasses.asdict(profile),
        "data": data,
        "max_pixels": max_pixels,
        "png_level": png_level,
    }


def profile_from(raw: Mapping[str, Any]) -> Profile:
    """The profile a job carries (``dataclasses.asdict``; msgpack turns tuples into lists)."""
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k not in ("renditions", "shadow")}
    renditions = tuple(_rendition(r) for r in raw.get("renditions") or ())
    return Profile(**values, renditions=renditions, shadow=Shadow(**(raw.get("shadow") or {})))


def _rendition(raw: Mapping[str, Any]) -> Rendition:
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    rules = values.pop("rules", None)
    if rules is not None:
        rules = Rules(**{k: tuple(v) if isinstance(v, list) else v for k, v in rules.items()})
    return Rendition(**values, rules=rules)


def answer_ok(
    job: str,
    files: dict[str, bytes],
    width: int,
    height: int,
    input_bytes: int,
    timings_ms: dict[str, float],
    model: str,
    worker: str,
    confidence: dict | None = None,
    validation: list[tuple[str, str]] | None = None,
) -> dict:
    return {
        "confidence": confidence,
        "validation": None if validation is None else [list(v) for v in validation],
        "job": job,
        "ok": True,
        "files": files,
        "width": width,
        "height": height,
        "input_bytes": input_bytes,
        "timings_ms": timings_ms,
        "model": model,
        "worker": worker,
    }


def answer_error(job: str, kind: str, reason: str, model: str, worker: str) -> dict:
    """``kind``: ``incomplete`` (wait for more bytes), ``too_large``, ``no_product`` (an empty
    matte), ``image`` (quarantine) or ``job`` (the worker failed for another reason: retried)."""
    return {"job": job, "ok": False, "kind": kind, "reason": reason, "model": model, "worker": worker}
