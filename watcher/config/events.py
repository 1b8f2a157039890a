"""``events:``: the shop's systems told, by signed webhooks, what became of each upload.

Parsed here like every section; the endpoints' secrets are read where they are used (the
daemon's senders sign with them), so a command that only writes events (``review approve``)
needs no access to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from unet_matting.watcher.config.yaml_sections import Section, positive
from unet_matting.watcher.errors import ConfigError

KINDS = ("output.published", "output.held", "output.rejected", "upload.failed", "batch.finished")
ENDPOINT_NAME = "a name of letters, digits, '-' and '_' (it names a folder of the outbox)"


@dataclass(frozen=True)
class Endpoint:
    """One receiver: its URL, the file its signing secret is in, what it wants."""

    name: str
    url: str
    secret_file: Path
    kinds: tuple[str, ...] = KINDS
    folders: tuple[str, ...] = ()  # empty: uploads in every folder of incoming

    def wants(self, kind: str, folder: str | None, callback: str | None = None) -> bool:
        """Whether an event of ``kind`` about an upload in ``folder`` (None: no upload, a batch)
        goes here; a batch that names this endpoint as its ``callback`` gets its event anyway."""
        if callback == self.name:
            return True
        if kind not in self.kinds:
            return False
        if not self.folders:
            return True
        return folder is not None and folder in self.folders


@dataclass(frozen=True)
class EventsConfig:
    """``events:`` (off while no endpoint is listed)."""

    endpoints: tuple[Endpoint, ...] = ()
    public_base_url: str | None = None  # where paths.output is served: events carry each file's URL
    timeout_s: float = 10.0  # connect, and each read of the answer
    retry_first_s: float = 5.0  # the first retry's delay; doubled each time (with jitter)...
    retry_max_s: float = 600.0  # ...up to this
    dead_after_h: float = 24.0  # undelivered this long: moved to outbox/dead/ with the last error

    def endpoint(self, name: str) -> Endpoint | None:
        return next((e for e in self.endpoints if e.name == name), None)


def _url(value: str, key: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key}: must be an http:// or https:// URL with a host")
    if parts.username or parts.password:  # not echoed: it holds a password
        raise ConfigError(f"{key}: must not carry credentials; the receiver checks the signature instead")
    return value


def _endpoint(s: Section) -> Endpoint:
    name = s.take("name", str)
    if not name or not all(c.isalnum() or c in "-_" for c in name) or name.startswith("-"):
        raise ConfigError(f"{s.key('name')}: must be {ENDPOINT_NAME}, got {name!r}")
    url = _url(s.take("url", str), s.key("url"))
    secret_file = s.take("secret_file", Path)
    kinds = tuple(s.take("kinds", list, list(KINDS)))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ConfigError(f"{s.key('kinds')}: must list some of {', '.join(KINDS)}, got {unknown or kinds!r}")
    folders = s.take("folders", list, [])
    if not all(isinstance(f, str) and f and "/" not in f for f in folders):
        raise ConfigError(f"{s.key('folders')}: must list top-level folder names of incoming, got {folders!r}")
    s.done()
    return Endpoint(name, url, secret_file, kinds, tuple(folders))


def parse_events(s: Section) -> EventsConfig:
    raw = s.raw.pop("endpoints", None) or []
    if not isinstance(raw, list):
        raise ConfigError(f"{s.key('endpoints')}: must be a list of endpoints")
    endpoints = tuple(_endpoint(Section(item, f"{s.key('endpoints')}[{i}]", s.base)) for i, item in enumerate(raw))
    names = [e.name for e in endpoints]
    if len(set(names)) != len(names):
        raise ConfigError(f"{s.key('endpoints')}: endpoint names must differ, got {names}")
    base = s.take("public_base_url", str, None)
    cfg = EventsConfig(
        endpoints=endpoints,
        public_base_url=None if base is None else _url(base, s.key("public_base_url")).rstrip("/"),
        timeout_s=s.take("timeout_s", float, EventsConfig.timeout_s, positive),
        retry_first_s=s.take("retry_first_s", float, EventsConfig.retry_first_s, positive),
        retry_max_s=s.take("retry_max_s", float, EventsConfig.retry_max_s, positive),
        dead_after_h=s.take("dead_after_h", float, EventsConfig.dead_after_h, positive),
    )
    s.done()
    return cfg
