"""The watcher's side of the queue: send a job, wait for its answer, watch the broker.

``RemoteMatting.render`` stands in for ``pipeline.render`` when ``queue.broker_url`` is set: it
publishes the upload's bytes as a job and blocks the calling worker thread until an answer for
that job id arrives on this watcher's results queue (or the job is dead-lettered), then returns
the same ``Rendered`` value or raises the same errors, so everything after it (outputs, archive,
quarantine) is the watcher's usual code. One listener thread consumes the results queue and
reconnects after a broker restart; answers nobody waits for (from before a restart of the
watcher, or a job's second delivery) are dropped: the upload they belong to is sent again or
already done.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Any

import structlog
from kombu import Connection, Consumer

from unet_matting.engine.confidence import Confidence
from unet_matting.engine.errors import ImageError, ImageIncomplete, ImageTooLarge, JobError, NoProduct
from unet_matting.engine.profile import Profile
from unet_matting.watcher.config import QueueConfig
from unet_matting.watcher.errors import DeadJob, Deferred
from unet_matting.watcher.processing.pipeline import Rendered
from unet_matting.watcher.remote.broker import (
    MAX_MESSAGE_BYTES,
    TASK,
    dead_queue,
    job_message,
    jobs_queue,
    make_app,
    results_queue,
    results_queue_name,
)
from unet_matting.watcher.threads import StoppableThread

log = structlog.get_logger(__name__)
STATS_INTERVAL_S = 5.0
WAIT_STEP_S = 0.2


@dataclass
class QueueStats:
    connected: bool = False
    jobs_ready: int | None = None  # jobs waiting in the broker for a worker
    workers: int | None = None  # consumers of the jobs queue (one per worker process)
    dead: int | None = None  # dead-lettered jobs kept for the operator
    waiting: int = 0  # this watcher's jobs sent and not yet answered (filled in by snapshot())


class _Waiter:
    __slots__ = ("event", "answer")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.answer: dict[str, Any] | None = None


class RemoteMatting:
    """Sends jobs to ``queue.jobs`` and hands answers to the threads waiting for them: the
    ``watcher.matting.Matting`` of queue mode."""

    counts_crashes = False  # the workers run the model; RabbitMQ counts their deaths
    label = "queue workers"

    def __init__(self, cfg: QueueConfig) -> None:
        self.cfg = cfg
        self.results_name = results_queue_name(cfg)
        self.app = make_app(cfg)
        self._waiters: dict[str, list[_Waiter]] = {}
        self._lock = threading.Lock()
        self._abandon_at = float("inf")  # stopping: waiting threads give up at this monotonic time
        self.stats = QueueStats()
        self.listener = _Listener(self)

    def start(self) -> None:
        self.listener.start()

    def stop(self) -> None:
        self.listener.stop()
        self.listener.join()
        self.app.close()

    def abandon_waits(self, after_s: float) -> None:
        """Stopping: threads still waiting after ``after_s`` give up; their uploads stay in
        incoming and are sent again at the next start."""
        self._abandon_at = time.monotonic() + after_s

    def render(self, data: bytes, profile: Profile, job: str, file: str, max_pixels: int, png_level: int) -> Rendered:
        """Send the job, wait for its answer; the answer as ``pipeline.render`` would give it."""
        waiter = _Waiter()
        with self._lock:
            self._waiters.setdefault(job, []).append(waiter)
        try:
            self._send(job, file, data, profile, max_pixels, png_level)
            waited = 0.0  # counted only while a worker could have taken the job: no pile of re-sends
            while not waiter.event.wait(WAIT_STEP_S):  # in the broker while no worker is connected
                if time.monotonic() > self._abandon_at:
                    raise Deferred(
                        "the watcher stopped before the workers answered; sent again at the next start", None
                    )
                if self.stats.connected and self.stats.workers:
                    waited += WAIT_STEP_S
                if waited > self.cfg.result_timeout_s:
                    raise Deferred(
                        f"no answer from the workers within {self.cfg.result_timeout_s:g} s "
                        f"(queue.result_timeout_s); sent again",
                        0.0,
                    )
        finally:
            with self._lock:
                waiting = self._waiters.get(job, [])
                if waiter in waiting:
                    waiting.remove(waiter)
                if not waiting:
                    self._waiters.pop(job, None)
        return _rendered(waiter.answer)

    def _send(self, job: str, file: str, data: bytes, profile: Profile, max_pixels: int, png_level: int) -> None:
        if len(data) > MAX_MESSAGE_BYTES:
            raise ImageTooLarge(
                f"the upload is {len(data) / 1e6:.0f} MB, more than the "
                f"{MAX_MESSAGE_BYTES / 1e6:.0f} MB a queue message may carry"
            )
        try:
            self.app.send_task(
                TASK,
                kwargs=job_message(job, file, profile, data, max_pixels, png_level),
                task_id=job,
                reply_to=self.results_name,
                queue=jobs_queue(self.cfg),
            )
        except Exception as e:  # kombu's OperationalError, socket errors, a refused publish
            raise Deferred(
                f"the broker is unreachable ({_reason(e)}); sent again in {self.cfg.retry_s:g} s", self.cfg.retry_s
            ) from None
        log.debug("job_sent", job_id=job, file=file, bytes=len(data))

    def deliver(self, answer: dict[str, Any]) -> bool:
        """An answer arrived: wake the threads waiting for its job; False if none waits."""
        with self._lock:
            waiting = self._waiters.get(answer.get("job", ""), [])
            for waiter in waiting:
                waiter.answer = answer
                waiter.event.set()
            return bool(waiting)

    def waiting(self) -> int:
        with self._lock:
            return sum(len(w) for w in self._waiters.values())

    def snapshot(self) -> QueueStats:
        """The broker's figures as last sampled, with this watcher's jobs awaiting an answer now."""
        return dataclasses.replace(self.stats, waiting=self.waiting())

    def memory(self) -> None:
        return None  # no model in this process

    def queue_stats(self) -> QueueStats:
        return self.snapshot()

    def status(self) -> dict:
        return {"queue": dataclasses.asdict(self.snapshot())}

    def health(self) -> dict:
        return {"broker": dataclasses.asdict(self.snapshot())}

    def threads(self) -> list:
        return [self.listener]

    def problems(self) -> list[str]:
        """Why the fleet cannot matte now (for ``/health``)."""
        broker = self.snapshot()
        if not broker.connected:
            return ["the RabbitMQ broker is unreachable"]
        return ["no queue worker is connected"] if broker.workers == 0 else []


def _confidence(raw: Any) -> Confidence | None:
    """A worker's confidence (None from a worker that predates the score)."""
    if not isinstance(raw, dict):
        return None
    return Confidence(float(raw["score"]), tuple(raw.get("reasons") or ()), dict(raw.get("signals") or {}))


def _rendered(answer: dict[str, Any] | None) -> Rendered:
    if answer is None:
        raise JobError("an empty answer from the queue")
    if answer.get("ok"):
        return Rendered(
            dict(answer["files"]),
            int(answer["width"]),
            int(answer["height"]),
            int(answer["input_bytes"]),
            dict(answer.get("timings_ms") or {}),
            model=answer.get("model", ""),
            worker=answer.get("worker", ""),
            confidence=_confidence(answer.get("confidence")),
            validation=None if answer.get("validation") is None else [tuple(v) for v in answer["validation"]],
        )
    kind, reason = answer.get("kind"), str(answer.get("reason", "no reason given"))
    error = {
        "incomplete": ImageIncomplete,
        "too_large": ImageTooLarge,
        "no_product": NoProduct,
        "image": ImageError,
        "dead": DeadJob,
    }.get(kind)
    if error is not None:
        raise error(reason)
    raise JobError(f"worker {answer.get('worker', '?')}: {reason}")


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{e.__class__.__name__}: {text}" if text else e.__class__.__name__


def dead_answer(headers: dict[str, Any]) -> dict[str, Any]:
    """The answer a dead-lettered job stands for, from its headers (``id``, ``x-death``)."""
    deaths = headers.get("x-death") or [{}]
    reason = headers.get("x-first-death-reason") or deaths[0].get("reason", "dead-lettered")
    return {
        "job": headers.get("id", ""),
        "ok": False,
        "kind": "dead",
        "worker": "",
        "reason": f"the workers stopped while processing this file every time it was delivered "
        f"(RabbitMQ dead-lettered the job: {reason}); it is kept in the dead-letter queue",
    }


class _Listener(StoppableThread):
    """Consumes the results queue, declares the topology, samples queue depths; reconnects."""

    def __init__(self, remote: RemoteMatting) -> None:
        super().__init__("queue-listener")
        self.remote = remote
        self._outage_logged = False

    def run_once(self) -> None:
        cfg = self.remote.cfg
        try:
            with Connection(cfg.broker_url, heartbeat=30, connect_timeout=5) as conn:
                conn.connect()
                self._serve(conn)
        except Exception as e:  # connection refused, reset, channel errors: reconnect
            self.remote.stats.connected = False
            if not self._outage_logged:
                log.warning("queue_unreachable", error=_reason(e), retry_s=2)
                self._outage_logged = True
            self.stopped.wait(2.0)

    def _serve(self, conn: Connection) -> None:
        cfg, stats = self.remote.cfg, self.remote.stats
        channel = conn.channel()
        for queue in (jobs_queue(cfg), dead_queue(cfg), results_queue(self.remote.results_name)):
            queue(channel).declare()
        consumer = Consumer(
            channel,
            queues=[results_queue(self.remote.results_name)],
            callbacks=[self._on_message],
            accept=["msgpack"],
            no_ack=False,
            prefetch_count=64,
        )
        with consumer:
            stats.connected = True
            log.info("queue_connected", results=self.remote.results_name, jobs=cfg.jobs)
            self._outage_logged = False
            next_stats = 0.0
            while not self.stopped.is_set():
                if time.monotonic() >= next_stats:
                    self._sample(channel)
                    next_stats = time.monotonic() + STATS_INTERVAL_S
                try:
                    conn.drain_events(timeout=0.5)
                except TimeoutError:
                    conn.heartbeat_check()

    def _sample(self, channel) -> None:
        cfg, stats = self.remote.cfg, self.remote.stats
        _, stats.jobs_ready, stats.workers = channel.queue_declare(cfg.jobs, passive=True)
        _, stats.dead, _ = channel.queue_declare(cfg.dead, passive=True)

    def _on_message(self, body: Any, message) -> None:
        headers = message.headers or {}
        answer = dead_answer(headers) if "x-death" in headers else body
        if not isinstance(answer, dict) or not self.remote.deliver(answer):
            log.debug("answer_unclaimed", job_id=answer.get("job") if isinstance(answer, dict) else None)
        message.ack()
