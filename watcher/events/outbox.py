"""The durable outbox: ``paths.state/outbox/<endpoint>/<event id>.json``, one file per delivery.

An event is written (fsynced) for every endpoint that wants it before the step that made it
counts as done; a sender deletes a file once its endpoint answered 2xx. A file's body is the
exact bytes sent on every try (the signature covers them), so a retry is the same request and a
receiver can drop duplicates by the event's id. After ``dead_after_h`` without success the file
moves to ``outbox/dead/<endpoint>/`` with its last error. Any process with the config may add
events (``review approve`` from a shell); the daemon's senders pick the files up.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unet_matting.watcher.durable import TEMP_PREFIX, atomic_write, fsync_dir
from unet_matting.watcher.processing.output import json_bytes

DEAD = "dead"


@dataclass
class Delivery:
    """One event waiting for one endpoint: where its file is and what it says."""

    path: Path
    record: dict[str, Any]

    @property
    def id(self) -> str:
        return self.record["id"]

    @property
    def body(self) -> bytes:
        return self.record["body"].encode("utf-8")


class Outbox:
    def __init__(self, state: Path) -> None:
        self.root = state / "outbox"

    def folder(self, endpoint: str) -> Path:
        return self.root / endpoint

    def add(self, endpoint: str, event_id: str, kind: str, body: bytes, now: float) -> Path:
        """The event for ``endpoint``, fsynced; the same id again replaces it (one delivery)."""
        path = self.folder(endpoint) / f"{event_id}.json"
        record = {"id": event_id, "kind": kind, "endpoint": endpoint, "created": now, "attempts": 0, "next_at": now}
        atomic_write(path, json_bytes({**record, "last_error": None, "body": body.decode("utf-8")}), 0o600)
        return path

    def waiting(self, endpoint: str) -> list[Delivery]:
        """The endpoint's undelivered events, oldest first (a file that cannot be read is skipped)."""
        found = []
        folder = self.folder(endpoint)
        if not folder.is_dir():
            return found
        for path in folder.glob("*.json"):
            if path.name.startswith(TEMP_PREFIX):
                continue
            try:
                found.append(Delivery(path, json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError):
                continue
        return sorted(found, key=lambda d: (d.record.get("created", 0), d.id))

    def delivered(self, delivery: Delivery) -> None:
        delivery.path.unlink(missing_ok=True)
        fsync_dir(delivery.path.parent)

    def failed(self, delivery: Delivery, error: str, next_at: float) -> None:
        """Count a failed try and when to try again (the file rewritten atomically)."""
        delivery.record.update(attempts=delivery.record.get("attempts", 0) + 1, last_error=error, next_at=next_at)
        atomic_write(delivery.path, json_bytes(delivery.record), 0o600)

    def bury(self, delivery: Delivery) -> Path:
        """Move an event that never got through to ``outbox/dead/<endpoint>/``, its last error in it."""
        target = self.root / DEAD / delivery.record["endpoint"] / delivery.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, json_bytes(delivery.record), 0o600)
        self.delivered(delivery)
        return target

    def counts(self, endpoint: str) -> tuple[int, int]:
        """(pending, dead) for ``endpoint``."""
        return _count(self.folder(endpoint)), _count(self.root / DEAD / endpoint)


def _count(folder: Path) -> int:
    try:
        return sum(1 for e in os.scandir(folder) if e.name.endswith(".json") and not e.name.startswith(TEMP_PREFIX))
    except OSError:
        return 0
