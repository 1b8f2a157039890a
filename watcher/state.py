"""Crash-safe job state under ``paths.state``: attempts per file, and counters for ``status``.

``attempts.json`` records a job *before* it starts and drops it when it ends, whatever the end.
A file still listed after a restart was in hand when the daemon died (kill -9, OOM, a crash in
a decoder); one listed ``max_attempts`` times is a poison file and is quarantined, not retried.
Each write is atomic (temp file, fsync, rename), so the file is always old or new, never torn.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path

import structlog

from unet_matting.watcher.config import PathsConfig
from unet_matting.watcher.durable import atomic_write, remove_stale_temps
from unet_matting.watcher.errors import AlreadyRunning

log = structlog.get_logger(__name__)
STATUS_FILE = "status.json"
STATUS_INTERVAL_S = 2.0  # the daemon rewrites status.json this often


class AttemptLog:
    """Attempt counts keyed by a file's identity (relative path, size, mtime, inode)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "attempts.json"
        self._lock = threading.Lock()
        self._counts: dict[str, int] = self._read()

    def _read(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}  # unreadable state must not stop the daemon; the worst case is a retry
        return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _write(self) -> None:
        atomic_write(self.path, json.dumps(self._counts, ensure_ascii=True).encode())

    def begin(self, key: str) -> int:
        """Record one more attempt on ``key``; returns the attempts before this one."""
        with self._lock:
            before = self._counts.get(key, 0)
            self._counts[key] = before + 1
            self._write()
            return before

    def end(self, key: str) -> None:
        with self._lock:
            if self._counts.pop(key, None) is not None:
                self._write()


class StatusFile:
    """``status.json``: what the daemon is doing, rewritten atomically for operators."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STATUS_FILE

    def write(self, status: dict) -> None:
        atomic_write(self.path, json.dumps(status, default=str, ensure_ascii=False).encode())


class InstanceLock:
    """One daemon per state directory: an ``flock`` on ``daemon.lock``, which holds the pid.

    The kernel drops the lock when its holder exits in any way (kill -9 included), so a lock is
    never stale; a second daemon fails at once instead of processing every upload a second time.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "daemon.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(
                f"another unet-matting daemon (pid {holder}) is already running on {self.path.parent}; stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def prepare_directories(paths: PathsConfig) -> None:
    """Create the service's directories and drop temp files a crash left in them."""
    for directory in (paths.incoming, paths.output, paths.archive, paths.failed, paths.state, paths.review):
        directory.mkdir(parents=True, exist_ok=True)
    for directory in (paths.output, paths.archive, paths.failed, paths.state, paths.review):
        if removed := remove_stale_temps(directory):
            log.info("stale_temp_files_removed", directory=str(directory), count=removed)
