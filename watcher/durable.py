"""Durable files: written whole to a hidden temp file, fsynced, renamed into place, the directory
fsynced; every room that keeps a file across a crash (outputs, state, tasks, models) uses these."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

TEMP_PREFIX = ".unet-matting-"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stage(target: Path, data: bytes, mode: int = 0o644) -> Path:
    """Write ``data`` to a hidden, fsynced temp file beside ``target``; nothing left on failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write(target: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to a hidden temp file beside ``target``, fsync, rename, fsync the dir."""
    tmp = stage(target, data, mode)
    try:
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def remove_stale_temps(root: Path) -> int:
    """Delete temp files a crash left behind under ``root``; returns how many."""
    count = 0
    for tmp in root.rglob(f"{TEMP_PREFIX}*.tmp"):
        tmp.unlink(missing_ok=True)
        count += 1
    return count
