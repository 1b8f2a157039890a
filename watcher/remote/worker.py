"""``unet-matting worker``: a queue worker. Takes jobs from RabbitMQ, mattes them, answers.

Stateless compute: a job carries the upload's bytes and its profile; the answer carries the
output files back to the watcher that sent it, which alone writes outputs and moves uploads.
One process per GPU (``CUDA_VISIBLE_DEVICES``), ``queue.worker_threads`` jobs at a time sharing
forward passes. The model loads **before** the worker consumes anything: a worker whose model
fails to load exits with the reason and never takes (and so never loses) a job. The active model
is polled like the daemon's (``models use`` on the worker host switches it live).

Delivery: the Celery worker acknowledges a job only after its answer is published and confirmed
(late acks, prefetch 1 per thread); if the process dies, RabbitMQ gives its jobs to another
worker. Every log line of a job carries ``job_id`` (the same id as on the watcher's lines).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import structlog

from unet_matting.engine.errors import ImageError, ImageIncomplete, ImageTooLarge, NoProduct, UnetMattingError
from unet_matting.watcher import __version__, logs
from unet_matting.watcher.config import Config, QueueConfig, load_config
from unet_matting.watcher.errors import ConfigError
from unet_matting.watcher.models.active import load_session
from unet_matting.watcher.models.keeper import ModelKeeper, log_precision_check, switcher_for
from unet_matting.watcher.notify import Notifier, watchdog_interval_s
from unet_matting.watcher.processing.pipeline import render
from unet_matting.watcher.remote.broker import (
    MAX_MESSAGE_BYTES,
    TASK,
    answer_error,
    answer_ok,
    dead_queue,
    make_app,
    profile_from,
    results_queue,
)
from unet_matting.watcher.threads import StoppableThread

log = structlog.get_logger(__name__)
MODEL_POLL_S = 2.0


def keep_model(cfg: Config) -> ModelKeeper:
    """The worker's model, loaded now and kept current (``models use`` on this host switches it);
    a switch is one reference assignment, read once per job."""
    switcher = switcher_for(cfg.engine)
    return ModelKeeper(switcher, load_session(cfg.engine, switcher.wanted()))


def answer_for(job: dict[str, Any], holder: ModelKeeper, worker: str) -> tuple[dict[str, Any], str]:
    """Run one job; its answer (never raises for a bad image or a failed model) and outcome."""
    session = holder.session
    label = session.info.label
    try:
        rendered = render(
            job["data"],
            session,
            profile_from(job["profile"]),
            int(job["max_pixels"]),
            int(job["png_level"]),
            str(job.get("file") or "upload"),
        )
    except ImageIncomplete as e:
        return answer_error(job["job"], "incomplete", str(e), label, worker), "incomplete"
    except ImageTooLarge as e:
        return answer_error(job["job"], "too_large", str(e), label, worker), "refused"
    except NoProduct as e:
        return answer_error(job["job"], "no_product", str(e), label, worker), "refused"
    except ImageError as e:
        return answer_error(job["job"], "image", str(e), label, worker), "refused"
    except Exception as e:  # a model or GPU failure: the watcher retries the upload later
        log.exception("job_error", file=job.get("file"))
        return answer_error(job["job"], "job", f"{e.__class__.__name__}: {e}", label, worker), "error"
    if rendered.output_bytes > MAX_MESSAGE_BYTES:  # the broker would refuse the answer
        reason = (
            f"the cut-out is {rendered.output_bytes / 1e6:.0f} MB, more than the "
            f"{MAX_MESSAGE_BYTES / 1e6:.0f} MB a queue message may carry"
        )
        return answer_error(job["job"], "too_large", reason, label, worker), "refused"
    return answer_ok(
        job["job"],
        rendered.files,
        rendered.width,
        rendered.height,
        rendered.input_bytes,
        rendered.timings_ms,
        label,
        worker,
        None if rendered.confidence is None else dataclasses.asdict(rendered.confidence),
        rendered.validation,
    ), "done"


def build_worker_app(cfg: QueueConfig, holder: ModelKeeper, worker: str):
    """The Celery app with the one task; answers go to the job's ``reply_to`` queue."""
    from celery.exceptions import Reject

    app = make_app(cfg)
    declared: set[str] = set()

    @app.task(name=TASK, bind=True)
    def render_job(self, **job: Any) -> None:
        started = time.perf_counter()
        structlog.contextvars.bind_contextvars(job_id=job.get("job"), worker=worker)
        try:
            log.info(
                "job_started",
                file=job.get("file"),
                bytes=len(job.get("data", b"")),
                delivery=int((self.request.delivery_info or {}).get("redelivered", False)) + 1,
            )
            answer, outcome = answer_for(job, holder, worker)
            reply_to = self.request.reply_to
            try:
                with app.producer_pool.acquire(block=True, timeout=30) as producer:
                    producer.publish(
                        answer,
                        exchange="",
                        routing_key=reply_to,
                        serializer="msgpack",
                        delivery_mode=2,
                        retry=True,
                        retry_policy={"max_retries": 3, "interval_start": 1, "interval_step": 2},
                        declare=[] if reply_to in declared else [results_queue(reply_to)],
                    )
                    declared.add(reply_to)
            except Exception as e:  # the answer did not reach the broker: the job goes back to the queue
                log.warning("answer_not_sent", error=f"{e.__class__.__name__}: {e}", kept="the job is redelivered")
                raise Reject(str(e), requeue=True) from None
            extra = {"error": answer["reason"]} if "reason" in answer else {"stages_ms": answer["timings_ms"]}
            log.info(
                "job_finished",
                file=job.get("file"),
                outcome=outcome,
                model=answer["model"],
                **extra,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
        finally:
            structlog.contextvars.unbind_contextvars("job_id", "worker")

    return app


def run_worker(config_path: Path, name: str | None, threads: int | None) -> int:
    cfg = load_config(config_path)
    if cfg.queue.broker_url is None:
        raise ConfigError("queue.broker_url: a worker needs the RabbitMQ broker's URL")
    logs.configure(cfg.logging.level, cfg.logging.file, cfg.logging.console)
    quiet_celery(cfg.logging.level)
    # unique per process by default: Celery's control queue of a node name is exclusive, so two
    # workers started alike on one host (or replicas sharing a host name) would clash
    worker = f"{name or f'worker-{os.getpid()}'}@{socket.gethostname()}"
    refuse_a_taken_name(cfg.queue, worker)
    notifier = Notifier()
    try:
        holder = keep_model(cfg)  # before consuming: a bad model takes no job
    except UnetMattingError as e:
        log.error("worker_failed", worker=worker, error=str(e))
        raise
    session = holder.session
    log.info(
        "model_loaded",
        worker=worker,
        model=session.info.label,
        device=str(session.device),
        input_size=session.input_size,
        precision=session.precision,
    )
    log_precision_check(session, worker=worker)
    app = build_worker_app(cfg.queue, holder, worker)
    declare_dead_letters(app, cfg.queue)
    threads = threads or cfg.queue.worker_threads
    housekeeping = Housekeeping(holder, notifier)
    housekeeping.start()
    # READY once the model is loaded: a worker waiting for its broker is up (WATCHDOG pings go on)
    # and is not restarted by systemd's start time-out; STATUS says when it consumes
    notifier.ready(f"model {session.info.label} loaded; connecting to the broker")

    announce_lifecycle(worker, threads, cfg.queue.jobs, housekeeping, notifier)
    controller = app.Worker(
        hostname=worker,
        pool="threads",
        concurrency=threads,
        loglevel=cfg.logging.level.upper(),
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        quiet=True,
        optimization="fair",
    )
    controller.start()
    housekeeping.stop()
    housekeeping.join()
    if controller.exitcode:  # two workers started at the same instant under one name: say so
        refuse_a_taken_name(cfg.queue, worker)
    log.info("worker_stopped", worker=worker, exit_code=controller.exitcode)
    return controller.exitcode or 0


def announce_lifecycle(worker: str, threads: int, jobs: str, housekeeping: Housekeeping, notifier: Notifier) -> None:
    """worker_ready in the log and STATUS= once Celery consumes; on shutdown, stop the
    housekeeping (and its watchdog pings) and say STOPPING=1."""
    from celery.signals import worker_ready, worker_shutting_down

    worker_ready.connect(
        lambda **_: (
            log.info("worker_ready", worker=worker, version=__version__, threads=threads, jobs=jobs),
            notifier.status(f"consuming {jobs} with {threads} threads"),
        ),
        weak=False,
    )
    worker_shutting_down.connect(lambda **_: (housekeeping.stop(), notifier.stopping()), weak=False)


def refuse_a_taken_name(cfg: QueueConfig, worker: str) -> None:
    """A ``ConfigError`` (exit 2: a restart cannot fix it) when a connected worker already uses
    the node name ``worker``: RabbitMQ answers RESOURCE_LOCKED for its exclusive control queue."""
    from amqp.exceptions import ResourceLocked
    from kombu import Connection

    try:
        with Connection(cfg.broker_url, connect_timeout=5) as conn:
            conn.connect()
            conn.default_channel.queue_declare(f"{worker}.celery.pidbox", passive=True)
    except ResourceLocked:
        message = (
            f"the worker name {worker} is already taken by a running worker on the broker; "
            "give this one another --name, or leave --name out so that each process gets its own"
        )
        log.error("worker_failed", worker=worker, error=message)
        raise ConfigError(message) from None
    except Exception:  # no such queue (the name is free), or the broker is down: Celery waits for it
        return


def declare_dead_letters(app, cfg: QueueConfig) -> None:
    """The dead-letter queue exists before the first job can die, even if no watcher ever
    connected (the jobs queue names its exchange; without it dead jobs would be dropped)."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0.5, interval_step=0.5, interval_max=1)
            dead_queue(cfg)(conn.default_channel).declare()
    except Exception as e:  # the broker is down: Celery waits for it below; the watcher declares it too
        log.warning("queue_unreachable", error=f"{e.__class__.__name__}: {e}", retry="when consuming starts")


def quiet_celery(level: str) -> None:
    """Celery's per-task lines repeat ours (which carry job_id): only its warnings, unless debugging.
    Its note that ETA tasks would block on a direct exchange does not apply: jobs have no ETA."""
    if level != "debug":
        logging.getLogger("celery").setLevel(logging.WARNING)
    logging.getLogger("kombu.transport.native_delayed_delivery").setLevel(logging.ERROR)


class Housekeeping(StoppableThread):
    """Polls the active model and pings systemd's watchdog while the worker runs."""

    def __init__(self, holder: ModelKeeper, notifier: Notifier) -> None:
        super().__init__("worker-housekeeping")
        self.holder, self.notifier = holder, notifier
        self.heartbeat = watchdog_interval_s()

    def run_once(self) -> None:
        if self.stopped.wait(min(MODEL_POLL_S, self.heartbeat or MODEL_POLL_S)):
            return
        if self.heartbeat:
            self.notifier.watchdog()
        self.holder.poll()  # a failed load is logged by the switcher; the old model keeps running
