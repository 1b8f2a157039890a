"""Deciding when an upload is complete: a pure tracker with an injected clock and stat.

Events are hints. A path becomes *ready* once no event touched it for ``quiet_period_s`` and two
stats that far apart show the same (size, mtime_ns, inode, ctime_ns). The image decode that
follows is the final proof and happens in the worker, not here.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePath


@dataclass(frozen=True)
class Signature:
    """What must not change between two stats for a file to count as settled."""

    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Signature:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


StatFn = Callable[[str], os.stat_result]


@dataclass
class _Pending:
    deadline: float
    signature: Signature | None


MAX_HELD_OPEN_S = 3600.0  # after this, a file counted as open is judged by its stats alone


class IgnoreRules:
    """Temp-name patterns matched against every component of a path below incoming."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(p.lower() for p in patterns)

    def ignored(self, relative: PurePath) -> bool:
        return any(fnmatch.fnmatchcase(part.lower(), p) for part in relative.parts for p in self.patterns)


class CompletionTracker:
    """Per-path quiet period and stat stability; ``ready()`` yields settled regular files.

    Symlinks and other non-regular files are reported as ready too, so the caller can
    quarantine them with a clear reason instead of ignoring them forever.
    """

    def __init__(
        self,
        quiet_period_s: float,
        clock: Callable[[], float],
        stat: StatFn = os.lstat,
        max_held_open_s: float = MAX_HELD_OPEN_S,
    ) -> None:
        self.quiet_period_s = quiet_period_s
        self.max_held_open_s = max_held_open_s
        self._clock = clock
        self._stat = stat
        self._pending: dict[str, _Pending] = {}
        self._opens: dict[str, tuple[int, float]] = {}  # path -> (handles open, since when)

    def opened(self, path: str, delta: int) -> None:
        """Open (+1) or close (-1) of ``path`` by anyone; a file held open is not complete.

        Opens from before the daemon started are unknown, so counts never go below zero.
        """
        count, since = self._opens.get(path, (0, self._clock()))
        count = max(0, count + delta)
        if count:
            self._opens[path] = (count, since)
        else:
            self._opens.pop(path, None)

    def forget_opens(self) -> None:
        """After lost events (inotify overflow) the counts cannot be trusted: drop them."""
        self._opens.clear()

    def held_open(self, path: str, now: float) -> bool:
        entry = self._opens.get(path)
        if entry is None:
            return False
        if now - entry[1] > self.max_held_open_s:  # a lost close event must not hold a file forever
            del self._opens[path]
            return False
        return True

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, path: str) -> bool:
        return path in self._pending

    def touch(self, path: str) -> None:
        """An event (or a scan) saw ``path``: restart its quiet period."""
        self._pending[path] = _Pending(self._clock() + self.quiet_period_s, self._signature(path))

    def forget(self, path: str) -> None:
        self._pending.pop(path, None)

    def next_deadline(self) -> float | None:
        return min((p.deadline for p in self._pending.values()), default=None)

    def ready(self) -> list[str]:
        """Paths whose quiet period ended with an unchanged signature; they leave the tracker."""
        now = self._clock()
        done = []
        for path, pending in list(self._pending.items()):
            if pending.deadline > now:
                continue
            current = self._signature(path)
            if current is None:
                del self._pending[path]  # deleted or renamed away: nothing to do
            elif current == pending.signature and not self.held_open(path, now):
                del self._pending[path]
                done.append(path)
            else:
                self._pending[path] = _Pending(now + self.quiet_period_s, current)
        return sorted(done)

    def _signature(self, path: str) -> Signature | None:
        try:
            return Signature.of(self._stat(path))
        except OSError:  # gone, or unreadable: the next event or rescan brings it back
            return None
