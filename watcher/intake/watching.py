"""Watching ``paths.incoming``: the watchdog observer, started afresh when the directory it
watched was deleted (or replaced) and is back, since inotify's watches die with their directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import structlog
from watchdog.events import FileSystemEventHandler
from watchdog.observers.api import BaseObserver

from unet_matting.watcher.intake.observer import make_observer

log = structlog.get_logger(__name__)


def directory_id(path: Path) -> int | None:
    """The inode of the directory at ``path``; None when there is none."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino if path.is_dir() else None


class IncomingWatch:
    """The observer on incoming; ``check`` (from the daemon's tick) reports a missing incoming
    and re-arms the observer when it is back, then asks for a rescan."""

    def __init__(
        self,
        kind: str,
        incoming: Path,
        handler: FileSystemEventHandler,
        polling_interval_s: float,
        rescan: Callable[[str], None],
    ) -> None:
        self._make = lambda: make_observer(kind, incoming, handler, polling_interval_s)
        self.incoming, self._rescan = incoming, rescan
        self.observer: BaseObserver = self._make()
        self._id = directory_id(incoming)

    @property
    def name(self) -> str:
        return self.observer.name

    @property
    def missing(self) -> bool:
        return self._id is None

    def start(self) -> None:
        self.observer.start()

    def stop(self) -> None:
        self.observer.stop()

    def join(self) -> None:
        self.observer.join()

    def is_alive(self) -> bool:
        return self.observer.is_alive()

    def check(self) -> None:
        now = directory_id(self.incoming)
        if now == self._id:
            return
        if now is None:
            log.error(
                "incoming_missing",
                incoming=str(self.incoming),
                action="uploads wait; watching resumes when the directory is back",
            )
        else:
            log.info("incoming_restored", incoming=str(self.incoming), action="watching it again")
            self.observer.stop()
            self.observer.join()
            self.observer = self._make()
            self.observer.start()
            self._rescan("incoming_restored")
        self._id = now
