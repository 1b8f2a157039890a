"""The daemon's parts as one ordered list, in the manner of Celery's bootsteps: each part starts
in list order and stops in reverse; a stop first asks every part to stop (so they wind down
together), then waits for each, again in reverse order.

A part is anything with ``name``, ``start()``, ``stop()`` (ask; returns at once), ``join()``
(wait) and ``is_alive()``: the threads, the observer on incoming, the HTTP server, the matting
strategy (``MattingPart``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from unet_matting.watcher.processing.matting import Matting


class Part(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def join(self) -> None: ...

    def is_alive(self) -> bool: ...


class Parts:
    """The started parts, in start order."""

    def __init__(self) -> None:
        self._parts: list[Part] = []

    def start(self, part: Part) -> None:
        part.start()
        self._parts.append(part)

    def adopt(self, part: Part) -> None:
        """A part started earlier than its place in the list (the HTTP side starts before the
        model loads, so /health can say so) that stops as if started here."""
        self._parts.append(part)

    def dead(self) -> list[str]:
        return [p.name for p in self._parts if not p.is_alive()]

    def stop(self) -> None:
        """Ask every part to stop, last started first, then wait for each in the same order."""
        for part in reversed(self._parts):
            part.stop()
        for part in reversed(self._parts):
            part.join()
        self._parts.clear()


class MattingPart:
    """The matting strategy in use (``current()``: a model switch replaces it) as a part:
    stopping gives jobs still waiting for queue workers ``grace_s`` to get their answers;
    joining releases it (the queue client's listener)."""

    def __init__(self, current: Callable[[], Matting], grace_s: float) -> None:
        self._current, self.grace_s = current, grace_s

    @property
    def matting(self) -> Matting:
        return self._current()

    @property
    def name(self) -> str:
        return ", ".join(t.name for t in self.matting.threads()) or "matting"

    def start(self) -> None:
        return None  # started when it was made (a loaded model, a connected client)

    def stop(self) -> None:
        self.matting.abandon_waits(after_s=self.grace_s)

    def join(self) -> None:
        self.matting.stop()

    def is_alive(self) -> bool:
        return all(t.is_alive() for t in self.matting.threads())
