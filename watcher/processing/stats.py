"""Job counters by outcome, for ``STATUS=`` and ``status.json``; safe to share between threads."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stats:
    """Counters for ``STATUS=`` and ``status.json``."""

    outcomes: Counter = field(default_factory=Counter)
    last_file: str = ""
    last_outcome: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, relative: Path, outcome: str) -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            self.last_file, self.last_outcome = str(relative), outcome

    def snapshot(self) -> StatsSnapshot:
        """A consistent copy for readers on other threads (status line, status.json)."""
        with self.lock:
            return StatsSnapshot(Counter(self.outcomes), self.last_file, self.last_outcome)


@dataclass(frozen=True)
class StatsSnapshot:
    outcomes: Counter
    last_file: str
    last_outcome: str
