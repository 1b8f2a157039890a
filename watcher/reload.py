"""What a reload (SIGHUP) applies: a pure function from the running and the re-read config.

Applied at once: profiles, logging, the watcher's timings and ignore rules, the HTTP token,
body limit and batch roots. Kept, with a ``reload_needs_restart`` warning naming them: the
paths, the observer, the number of workers, the queue, and the HTTP settings a running server
cannot take. A changed engine section with a local model loads its model in the background and
applies with it (``engine``); in queue mode there is no model here, so it applies at once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import structlog

from unet_matting.watcher.config import Config, EngineConfig, HttpConfig

log = structlog.get_logger(__name__)
# http settings a running server cannot take (the socket, the gate, uvicorn's limits)
HTTP_RESTART_KEYS = ("listen", "max_pending", "request_timeout_s", "max_connections")


@dataclass(frozen=True)
class Reload:
    config: Config  # what applies now
    engine: EngineConfig | None  # engine settings that apply once their model has loaded


def plan_reload(old: Config, new: Config, local_model: bool) -> Reload:
    """The config to apply now, and the engine settings that wait for their model."""
    if new.paths != old.paths or new.watcher.observer != old.watcher.observer:
        log.warning("reload_needs_restart", keys="paths, watcher.observer", kept="old values")
    if new.queue != old.queue:
        log.warning("reload_needs_restart", keys="queue", kept="old values")
    watcher = dataclasses.replace(new.watcher, observer=old.watcher.observer, workers=old.watcher.workers)
    applied = dataclasses.replace(
        new, paths=old.paths, watcher=watcher, queue=old.queue, http=_http(old.http, new.http)
    )
    if local_model and new.engine != old.engine:
        return Reload(dataclasses.replace(applied, engine=old.engine), new.engine)
    return Reload(applied, None)


def _http(old: HttpConfig, new: HttpConfig) -> HttpConfig:
    changed = [k for k in HTTP_RESTART_KEYS if getattr(new, k) != getattr(old, k)]
    if changed:
        log.warning("reload_needs_restart", keys=", ".join(f"http.{k}" for k in changed), kept="old values")
    return dataclasses.replace(new, **{k: getattr(old, k) for k in HTTP_RESTART_KEYS})
