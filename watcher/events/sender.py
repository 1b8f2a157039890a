"""Delivering the outbox: one thread per endpoint, so a slow or dead receiver delays only itself.

Each pass sends every event that is due, oldest first: a 2xx answer deletes it; anything else
(a refused connection, a time-out, a 500, a redirect, which is never followed) is counted and the
event waits ``retry_first_s`` x 2^(tries-1), at most ``retry_max_s``, times a jitter of 0.5-1.5,
until ``dead_after_h`` after it was written: then it moves to ``outbox/dead/`` with a warning.
The jobs only ever write files; nothing here can slow them.
"""

from __future__ import annotations

import http.client
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from unet_matting.watcher import __version__
from unet_matting.watcher.config.events import Endpoint, EventsConfig
from unet_matting.watcher.config.secrets import read_secret
from unet_matting.watcher.errors import os_reason
from unet_matting.watcher.events.outbox import Delivery, Outbox
from unet_matting.watcher.events.signature import HEADER, sign
from unet_matting.watcher.threads import StoppableThread

log = structlog.get_logger(__name__)
POLL_S = 0.5  # how often a sender looks for new files (events added by any process)
MAX_ANSWER_BYTES = 64 * 1024  # what is read of a receiver's answer; the rest is not waited for


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no answer (refused, timed out)
    error: str | None = None  # why it failed, as one sentence


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Answer:
    """POST ``body`` once: no redirects followed, time-outs on connect and every read."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout_s, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", target, body, headers)
        response = connection.getresponse()
        response.read(MAX_ANSWER_BYTES)
    except TimeoutError:
        return Answer(None, f"{parts.hostname} did not answer within {timeout_s:g} s")
    except (OSError, http.client.HTTPException) as e:
        reason = os_reason(e) if isinstance(e, OSError) else e.__class__.__name__
        return Answer(None, f"could not deliver to {parts.hostname}: {reason}")
    finally:
        connection.close()
    if 200 <= response.status < 300:
        return Answer(response.status)
    note = " (redirects are not followed)" if 300 <= response.status < 400 else ""
    return Answer(response.status, f"{parts.hostname} answered {response.status}{note}")


class Sender(StoppableThread):
    """Delivers one endpoint's events; ``deliver_due`` is one pass (tests call it with a fake clock)."""

    def __init__(
        self,
        endpoint: Endpoint,
        secret: str,
        outbox: Outbox,
        cfg: EventsConfig,
        counted: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(f"events-{endpoint.name}")
        self.endpoint, self._secret, self.outbox, self.cfg = endpoint, secret, outbox, cfg
        self._counted = counted  # (endpoint, "delivered" | "failed" | "dead") for /metrics
        self._clock, self._jitter = clock, jitter
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def run_once(self) -> None:
        wait = self.deliver_due()
        self.stopped.wait(max(0.05, min(POLL_S, wait)))

    def deliver_due(self) -> float:
        """Send what is due now; seconds until the next event is due (POLL_S when none waits)."""
        with self._lock:
            soonest = POLL_S
            for delivery in self.outbox.waiting(self.endpoint.name):
                if self.stopped.is_set():
                    break
                due = delivery.record.get("next_at", 0) - self._clock()
                if due <= 0:
                    due = self._try(delivery)  # a failed try is due again after its backoff
                if due is not None:
                    soonest = min(soonest, due)
            return soonest

    def _try(self, delivery: Delivery) -> float | None:
        """One delivery; seconds until it is due again, None when it is done (delivered or dead)."""
        body = delivery.body
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"unet-matting/{__version__}",
            "Unet-Matting-Event-Id": delivery.id,
            "Unet-Matting-Event-Kind": delivery.record.get("kind", ""),
            HEADER: sign(self._secret, int(self._clock()), body),
        }
        answer = post(self.endpoint.url, body, headers, self.cfg.timeout_s)
        tries = delivery.record.get("attempts", 0) + 1
        fields = {"endpoint": self.endpoint.name, "event_id": delivery.id, "kind": delivery.record.get("kind")}
        if answer.error is None:
            self.outbox.delivered(delivery)
            self.last_error = None
            self._count("delivered")
            log.info("event_delivered", **fields, status=answer.status, attempts=tries)
            return None
        self.last_error = answer.error
        self._count("failed")
        now = self._clock()
        if now - delivery.record.get("created", now) >= self.cfg.dead_after_h * 3600:
            delivery.record.update(attempts=tries, last_error=answer.error)
            target = self.outbox.bury(delivery)
            self._count("dead")
            log.warning(
                "event_dead",
                **fields,
                attempts=tries,
                error=answer.error,
                dead_after_h=self.cfg.dead_after_h,
                moved_to=str(target),
            )
            return None
        delay = min(self.cfg.retry_max_s, self.cfg.retry_first_s * 2 ** (tries - 1)) * (0.5 + self._jitter())
        self.outbox.failed(delivery, answer.error, now + delay)
        log.info("event_delivery_failed", **fields, attempts=tries, error=answer.error, retry_in_s=round(delay, 1))
        return delay

    def _count(self, what: str) -> None:
        if self._counted is not None:
            self._counted(self.endpoint.name, what)


class EventSenders:
    """The daemon's senders, one per endpoint, as one part; ``replace`` swaps them on a reload.

    Secrets are read when the senders are made (``watch`` refuses to start, and a reload fails,
    with a secret file others can read); they are held here only, never logged."""

    name = "events"

    def __init__(self, counted: Callable[[str, str], None] | None = None) -> None:
        self._counted = counted
        self.senders: list[Sender] = []
        self._lock = threading.Lock()

    @staticmethod
    def secrets(cfg: EventsConfig) -> dict[str, str]:
        """Each endpoint's secret (``ConfigError`` naming the key for a missing or open file)."""
        return {
            e.name: read_secret(e.secret_file, f"events.endpoints[{i}].secret_file")
            for i, e in enumerate(cfg.endpoints)
        }

    def replace(self, cfg: EventsConfig, state: Path, secrets: dict[str, str]) -> None:
        """Stop the senders there are, start one per endpoint of ``cfg``."""
        outbox = Outbox(state)
        made = [Sender(e, secrets[e.name], outbox, cfg, self._counted) for e in cfg.endpoints]
        with self._lock:
            old, self.senders = self.senders, made
        for sender in old:
            sender.stop()
        for sender in old:
            sender.join()
        for sender in made:
            sender.start()

    def start(self) -> None:
        return None  # started by replace

    def stop(self) -> None:
        for sender in self.senders:
            sender.stop()

    def join(self) -> None:
        for sender in self.senders:
            sender.join()

    def is_alive(self) -> bool:
        return all(s.is_alive() for s in self.senders)

    def last_errors(self) -> dict[str, str | None]:
        return {s.endpoint.name: s.last_error for s in self.senders}
