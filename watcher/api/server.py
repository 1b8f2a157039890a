"""The HTTP server thread: uvicorn serving the app, with a deadline on every request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import h11
import structlog
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from unet_matting.engine.errors import JobError
from unet_matting.watcher.api.app import Access, Gate, Health, build_app
from unet_matting.watcher.api.batches import BatchTasks
from unet_matting.watcher.config import HttpConfig
from unet_matting.watcher.config.secrets import read_secret
from unet_matting.watcher.processing.runner import JobContext
from unet_matting.watcher.prometheus import Metrics
from unet_matting.watcher.review.queue import ReviewQueue
from unet_matting.watcher.threads import StoppableThread

log = structlog.get_logger(__name__)


def deadline_protocol(request_timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a deadline: a connection that has not delivered a whole
    request (headers and body) ``request_timeout_s`` after it opened, or after its previous
    answer, is closed. uvicorn itself only times out idle keep-alive connections, so ten
    clients trickling a byte a second would hold their sockets forever."""

    class DeadlineH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(request_timeout_s, self._overdue)

        def _overdue(self) -> None:
            if self.transport.is_closing() or self.conn.their_state is h11.DONE:
                return  # the request is in; the app is answering it
            log.info("http_request_timeout", client=":".join(map(str, self.client or ())), timeout_s=request_timeout_s)
            self.transport.close()

    return DeadlineH11Protocol


class HttpServer(StoppableThread):
    """uvicorn serving the app in a daemon thread; ``stop`` asks it to finish and return."""

    def __init__(
        self, app: FastAPI, host: str, port: int, request_timeout_s: float = 30.0, max_connections: int = 256
    ) -> None:
        super().__init__("http")
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
            http=deadline_protocol(request_timeout_s),
            timeout_keep_alive=5,
            limit_concurrency=max_connections,
        )
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


def access_for(http: HttpConfig) -> Access:
    """What HTTP requests are checked against; a token file others can read is refused."""
    token = read_secret(http.token_file, "http.token_file") if http.token_file else None
    reviewer = read_secret(http.reviewer_token_file, "http.reviewer_token_file") if http.reviewer_token_file else None
    return Access(token, http.max_body_bytes, http.batch_roots, reviewer)


def serve(
    http: HttpConfig,
    context: Callable[[], JobContext | None],
    health: Callable[[], Health],
    metrics: Metrics,
    access: Callable[[], Access],
    batch: BatchTasks,
    review: Callable[[], ReviewQueue] | None = None,
) -> HttpServer:
    """The app on its own thread, listening (or a ``JobError`` saying why it cannot)."""
    app = build_app(context, health, metrics, access, http.max_pending, batch, review)
    server = HttpServer(app, *http.listen, http.request_timeout_s, http.max_connections)
    server.gate = app.state.gate
    server.start()
    if not server.wait_started():
        raise JobError(
            f"the HTTP server could not listen on {http.listen[0]}:{http.listen[1]} (address in use, or not allowed)"
        )
    log.info("http_listening", host=http.listen[0], port=http.listen[1], token=access().token is not None)
    return server
