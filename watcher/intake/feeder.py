"""The intake thread: hints in, settled uploads out as jobs; rescans on start, timer and overflow."""

from __future__ import annotations

import heapq
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from unet_matting.watcher.config import WatcherConfig
from unet_matting.watcher.intake.completion import CompletionTracker, IgnoreRules
from unet_matting.watcher.intake.jobs import Job, JobQueue
from unet_matting.watcher.intake.observer import Hint
from unet_matting.watcher.intake.scanning import walk_files
from unet_matting.watcher.threads import StoppableThread

log = structlog.get_logger(__name__)
MAX_WAIT_S = 0.5  # upper bound on how long a stop request can go unnoticed


@dataclass(frozen=True)
class IntakeSettings:
    """The intake's live settings, published whole by a reload and read once per pass."""

    ignore: IgnoreRules
    rescan_interval_s: float
    quiet_period_s: float

    @classmethod
    def of(cls, watcher: WatcherConfig) -> IntakeSettings:
        return cls(IgnoreRules(watcher.ignore_patterns), watcher.rescan_interval_s, watcher.quiet_period_s)


class Intake(StoppableThread):
    """Feeds the completion tracker from hints and scans, and queues what it reports ready.

    ``settings`` returns the current ``IntakeSettings``; the thread takes a snapshot at the start
    of every pass (a reload swaps the snapshot; nobody pokes this thread's attributes).
    """

    def __init__(
        self,
        incoming: Path,
        hints: queue.SimpleQueue[Hint],
        tracker: CompletionTracker,
        jobs: JobQueue,
        settings: Callable[[], IntakeSettings],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__("intake")
        self.incoming = incoming
        self.hints = hints
        self.tracker = tracker
        self.jobs = jobs
        self._settings = settings
        self._now = settings()
        self._clock = clock
        self._next_rescan = clock() + self._now.rescan_interval_s
        self._rechecks: list[tuple[float, str]] = []  # (monotonic due time, path), a heap
        self._rechecks_lock = threading.Lock()

    def recheck(self, path: Path, at: float) -> None:
        """Thread-safe: submit ``path`` again at monotonic time ``at`` (a decode grace's end)."""
        with self._rechecks_lock:
            heapq.heappush(self._rechecks, (at, str(path)))

    def request_rescan(self, reason: str = "requested", events_lost: bool = False) -> None:
        """Thread-safe: ask for a full walk of incoming (start-up, overflow, operator)."""
        log.info("rescan_requested", reason=reason)
        self.hints.put(Hint(str(self.incoming), scan=True, forget_opens=events_lost))

    def run_once(self) -> None:
        self._now = self._settings()
        self.tracker.quiet_period_s = self._now.quiet_period_s  # the tracker is this thread's own
        self._take_hints(self._wait_s())
        if self._clock() >= self._next_rescan:
            self._scan(self.incoming)
            self._next_rescan = self._clock() + self._now.rescan_interval_s
        for path in self.tracker.ready():
            self._submit(path)
        for path in self._due_rechecks():
            if os.path.lexists(path):
                self._submit(path)

    def _due_rechecks(self) -> list[str]:
        now, due = self._clock(), []
        with self._rechecks_lock:
            while self._rechecks and self._rechecks[0][0] <= now:
                due.append(heapq.heappop(self._rechecks)[1])
        return due

    def _wait_s(self) -> float:
        deadlines = [self._next_rescan, self.tracker.next_deadline()]
        with self._rechecks_lock:
            deadlines.append(self._rechecks[0][0] if self._rechecks else None)
        deadline = min(d for d in deadlines if d is not None)
        return max(0.0, min(MAX_WAIT_S, deadline - self._clock()))

    def _take_hints(self, wait_s: float) -> None:
        try:
            hint = self.hints.get(timeout=wait_s) if wait_s > 0 else self.hints.get_nowait()
        except queue.Empty:
            return
        while True:
            self._scan(Path(hint.path), hint.forget_opens) if hint.scan else self._hint(hint)
            try:
                hint = self.hints.get_nowait()
            except queue.Empty:
                return

    def relative(self, path: str) -> Path | None:
        """Path below incoming if it is one we act on (not outside, not a temp name)."""
        try:
            rel = Path(path).relative_to(self.incoming)
        except ValueError:
            return None
        return None if not rel.parts or self._now.ignore.ignored(rel) else rel

    def _hint(self, hint: Hint) -> None:
        if self.relative(hint.path) is None:
            return
        if hint.opens:
            self.tracker.opened(hint.path, hint.opens)
        if hint.touch:
            self.tracker.touch(hint.path)

    def _scan(self, directory: Path, forget_opens: bool = False) -> None:
        if forget_opens:
            self.tracker.forget_opens()
        found = 0
        for path in walk_files(directory):
            text = os.fsdecode(path)
            if text not in self.tracker and not self.jobs.busy(path) and self.relative(text):
                self.tracker.touch(text)
                found += 1
        log.info("scan_done", directory=str(directory), new_paths=found, tracked=len(self.tracker))

    def _submit(self, path: str) -> None:
        rel = self.relative(path)
        if rel is None:
            return
        if not self.jobs.put(Job(Path(path), rel)):
            self.tracker.touch(path)  # in hand right now: look again after another quiet period
