"""watchdog side: an observer whose handler only translates events into hints on a queue.

The handler never stats, decodes or calls the engine. Anything that may mean "new bytes or a new
name" is a hint; opens and closes also count a file's open handles (inotify only), so a writer
that pauses with the file still open is not taken for finished. Removals are dropped.
A directory created or moved in becomes a scan request, since files moved in with it send no
events of their own. watchdog's "Inotify queue overflowed" warning becomes a rescan request.
"""

from __future__ import annotations

import logging
import os
import queue
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserverVFS

FILE_HINTS = (FileCreatedEvent, FileModifiedEvent, FileAttribEvent)


@dataclass(frozen=True)
class Hint:
    """A path that may have changed (``touch``), whose open handles changed by ``opens``; or, with
    ``scan``, a directory to walk (``forget_opens``: after lost events, open counts are unknown)."""

    path: str
    scan: bool = False
    touch: bool = True
    opens: int = 0
    forget_opens: bool = False


class HintHandler(FileSystemEventHandler):
    """Turns watchdog events into ``Hint``s on a queue and returns at once."""

    def __init__(self, hints: queue.SimpleQueue[Hint]) -> None:
        self.hints = hints

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, FileMovedEvent):
            self.hints.put(Hint(os.fsdecode(event.dest_path)))
        elif isinstance(event, FileOpenedEvent):
            self.hints.put(Hint(os.fsdecode(event.src_path), touch=False, opens=1))
        elif isinstance(event, FileClosedNoWriteEvent):
            self.hints.put(Hint(os.fsdecode(event.src_path), touch=False, opens=-1))
        elif isinstance(event, FileClosedEvent):  # closed after writing: new bytes, one handle fewer
            self.hints.put(Hint(os.fsdecode(event.src_path), opens=-1))
        elif isinstance(event, FILE_HINTS):
            self.hints.put(Hint(os.fsdecode(event.src_path)))
        elif isinstance(event, DirMovedEvent):
            self.hints.put(Hint(os.fsdecode(event.dest_path), scan=True))
        elif isinstance(event, DirCreatedEvent):
            self.hints.put(Hint(os.fsdecode(event.src_path), scan=True))


class OverflowHook(logging.Handler):
    """Calls ``on_overflow`` when watchdog logs that the inotify queue overflowed."""

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__(level=logging.WARNING)
        self.on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.on_overflow()


def make_observer(kind: str, root: Path, handler: FileSystemEventHandler, polling_interval_s: float) -> BaseObserver:
    """An inotify (``Observer``) or polling observer scheduled recursively on ``root``.

    The polling one snapshots with ``lstat``: a symlink to a directory is an entry (refused like
    any symlink), never walked into, as inotify never watches through one either.
    """
    if kind == "polling":
        observer = PollingObserverVFS(os.lstat, os.scandir, polling_interval=polling_interval_s)
    else:
        observer = Observer()
    observer.name = f"observer-{kind}"
    observer.schedule(handler, str(root), recursive=True)
    return observer
