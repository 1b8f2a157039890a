"""Events for the shop's systems: what became of each upload, as signed webhooks.

``Events`` turns what a step did into one event body, ``{"id", "kind", "time", "data"}``, and
writes it to the durable outbox (``outbox.py``) for every endpoint that wants it; the daemon's
senders (``sender.py``) deliver it, signed (``signature.py``). An event's id is derived from what
it is about (the upload's identity, a review decision, a batch), so a step redone after a crash
writes the same event again and a receiver sees one id, never two events for one fact.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from unet_matting.watcher.config import folder_of
from unet_matting.watcher.events.outbox import Outbox
from unet_matting.watcher.processing.output import MANIFEST_SUFFIX

if TYPE_CHECKING:
    from unet_matting.engine.confidence import Confidence
    from unet_matting.watcher.config import Config
    from unet_matting.watcher.config.events import EventsConfig


class Events:
    def __init__(self, cfg: EventsConfig, state: Path, clock=time.time) -> None:
        self.cfg, self.outbox, self._clock = cfg, Outbox(state), clock

    @classmethod
    def of(cls, config: Config) -> Events | None:
        """The config's events, None when no endpoint is configured (then nothing is written)."""
        return cls(config.events, config.paths.state) if config.events.endpoints else None

    def emit(self, kind: str, about: str, data: dict[str, Any], folder: str | None, callback: str | None = None) -> str:
        """Write the event for every endpoint that wants it (fsynced); returns its id."""
        event_id = "evt_" + hashlib.sha256(f"{kind}\0{about}".encode("utf-8", "surrogateescape")).hexdigest()[:24]
        now = self._clock()
        body = {
            "id": event_id,
            "kind": kind,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "data": data,
        }
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
        encoded = raw.encode("utf-8", "surrogateescape")
        for endpoint in self.cfg.endpoints:
            if endpoint.wants(kind, folder, callback):
                self.outbox.add(endpoint.name, event_id, kind, encoded, now)
        return event_id

    # ---- what the steps report ------------------------------------------------------------------

    def published(self, relative: Path, manifest: bytes, about: str, **more: Any) -> str:
        """A set made visible in ``paths.output`` (by a job, or approved in review)."""
        return self.emit("output.published", about, {**self._set(relative, manifest), **more}, folder_of(relative))

    def held(self, relative: Path, item: str, confidence: Confidence | None, profile: str, about: str) -> str:
        data = {
            "upload": _upload(relative),
            "review": item,
            "profile": profile,
            "confidence": None
            if confidence is None
            else {"score": confidence.score, "reasons": list(confidence.reasons)},
        }
        return self.emit("output.held", about, data, folder_of(relative))

    def rejected(self, relative: Path, item: str, by: str, reason: str, quarantined_as: str, about: str) -> str:
        data = {
            "upload": _upload(relative),
            "review": item,
            "by": by,
            "reason": reason,
            "quarantined_as": quarantined_as,
        }
        return self.emit("output.rejected", about, data, folder_of(relative))

    def failed(self, relative: Path, reason: str, error: str, quarantined_as: str, about: str) -> str:
        """An upload quarantined in ``paths.failed``: the reason is the one in its ``.error.json``."""
        data = {"upload": _upload(relative), "error": error, "reason": reason, "quarantined_as": quarantined_as}
        return self.emit("upload.failed", about, data, folder_of(relative))

    def batch_finished(self, task: dict[str, Any], callback: str | None) -> str:
        data = {
            "task_id": task["task_id"],
            "status": task["status"],
            "total": task.get("total"),
            "done": task["done"],
            "failed": task["failed"],
            "errors": task.get("errors", {}),
            "result_url": task.get("result_url"),
        }
        return self.emit("batch.finished", task["task_id"], data, None, callback)

    def _set(self, relative: Path, manifest: bytes) -> dict[str, Any]:
        """The manifest's data with each file's path relative to the web directory (and URL)."""
        made = json.loads(manifest)
        folder = PurePosixPath(relative.parent.as_posix())
        files = {}
        for name, entry in made["files"].items():
            files[(folder / name).as_posix()] = {**entry, **self._url(folder / name)}
        manifest_path = folder / (relative.stem + MANIFEST_SUFFIX)
        data = {
            "upload": {**_upload(relative), "sha256": made["source"]["sha256"], "bytes": made["source"]["bytes"]},
            "profile": made["profile"],
            "model": made["model"],
            "confidence": made.get("confidence"),
            "manifest": {"path": manifest_path.as_posix(), **self._url(manifest_path)},
            "files": files,
        }
        if "validation" in made:
            data["validation"] = made["validation"]
        return data

    def _url(self, path: PurePosixPath) -> dict[str, str]:
        base = self.cfg.public_base_url
        return {} if base is None else {"url": f"{base}/{quote(path.as_posix())}"}


def _upload(relative: Path) -> dict[str, str]:
    return {"path": relative.as_posix(), "folder": folder_of(relative)}
