"""The one stoppable thread base every daemon thread derives from."""

from __future__ import annotations

import threading

import structlog

log = structlog.get_logger(__name__)


class StoppableThread(threading.Thread):
    """A named daemon-side thread with a stop event; ``run_once`` is called until stopped.

    Each pass catches, logs and counts its own errors, so one bad pass never ends the thread.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.stopped = threading.Event()
        self.errors = 0

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.run_once()
            except Exception:
                self.errors += 1
                log.exception("thread_pass_failed", thread=self.name)
                self.stopped.wait(1.0)

    def run_once(self) -> None:
        raise NotImplementedError
