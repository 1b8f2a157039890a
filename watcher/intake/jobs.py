"""Jobs and the queue between intake and workers; a path is queued or in hand at most once."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Job:
    """One settled upload: its absolute path and its path relative to incoming."""

    path: Path
    relative: Path


class JobQueue:
    """FIFO of jobs that drops duplicates: a path already queued or being processed is refused."""

    def __init__(self) -> None:
        self._items: deque[Job] = deque()
        self._busy: set[Path] = set()
        self._cond = threading.Condition()

    def put(self, job: Job) -> bool:
        with self._cond:
            if job.path in self._busy:
                return False
            self._busy.add(job.path)
            self._items.append(job)
            self._cond.notify()
            return True

    def get(self, timeout: float) -> Job | None:
        """Next job, or None after ``timeout`` seconds; it stays busy until ``done``."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def done(self, job: Job) -> None:
        with self._cond:
            self._busy.discard(job.path)

    def busy(self, path: Path) -> bool:
        with self._cond:
            return path in self._busy

    def depth(self) -> int:
        with self._cond:
            return len(self._items)

    def in_hand(self) -> int:
        with self._cond:
            return len(self._busy) - len(self._items)
