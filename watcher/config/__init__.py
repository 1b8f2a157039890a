"""Configuration: YAML parsed once, at the edge, into frozen dataclasses.

Every invalid value or unknown key is a ``ConfigError`` naming its key path; nothing falls back
to a default silently. Relative paths resolve against the directory of the file that holds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from unet_matting.engine.profile import Profile
from unet_matting.engine.settings import BACKDROP_MODES, DEFAULTS, PRECISIONS, EngineSettings
from unet_matting.watcher.config.events import EventsConfig, parse_events
from unet_matting.watcher.config.profiles import lookup_profile, parse_profiles
from unet_matting.watcher.config.yaml_sections import Section, at_least, one_of, patterns, positive, read_yaml
from unet_matting.watcher.errors import ConfigError

DEFAULT_IGNORE = (".*", "*.filepart", "*.part", "*.partial", "*.tmp", "~*", "*.crdownload")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class PathsConfig:
    incoming: Path
    output: Path
    archive: Path
    failed: Path
    state: Path
    review: Path  # cut-outs held for a person; absent from older configs: <state>/review


@dataclass(frozen=True)
class LoggingConfig:
    file: Path | None
    level: str
    console: bool


@dataclass(frozen=True)
class WatcherConfig:
    observer: str
    quiet_period_s: float
    ignore_patterns: tuple[str, ...]
    rescan_interval_s: float
    polling_interval_s: float
    decode_grace_s: float
    max_attempts: int
    workers: int


@dataclass(frozen=True)
class EngineConfig:
    """``engine:``: the engine's own settings as parsed (model None: ``auto``, the best installed
    model, see ``watcher.models``), and what only the daemon uses."""

    settings: EngineSettings
    models_dir: Path | None
    max_input_pixels: int
    processes: int = 0  # render processes of the daemon, each with its own model; 0: its worker threads render


@dataclass(frozen=True)
class OutputConfig:
    png_compress_level: int


@dataclass(frozen=True)
class HttpConfig:
    """``http:``: the API inside ``watch`` (off unless ``listen`` is set)."""

    listen: tuple[str, int] | None = None
    token_file: Path | None = None
    reviewer_token_file: Path | None = None  # a second token that reaches only the review page and its API
    max_body_bytes: int = 50_000_000
    max_pending: int = 16
    batch_roots: tuple[Path, ...] = ()  # folders batch requests may read from and write to
    request_timeout_s: float = 30.0  # a connection must deliver its whole request within this
    max_connections: int = 256  # open connections at once; more are answered 503


@dataclass(frozen=True)
class QueueConfig:
    """``queue:``: matting on worker processes through RabbitMQ (off unless ``broker_url`` is set).

    The watcher sends each completed upload (its bytes and its profile) to ``jobs``; workers
    (``unet-matting worker``) answer on the watcher's own results queue; a job delivered
    ``max_deliveries`` times without an answer (its worker died each time) is dead-lettered to
    ``dead`` and its upload quarantined.
    """

    broker_url: str | None = None
    jobs: str = "unet-matting.jobs"
    dead: str = "unet-matting.dead"
    results: str | None = None  # None: unet-matting.results.<host name>
    max_deliveries: int = 3
    result_timeout_s: float = 600.0  # no answer this long: the job is sent again
    retry_s: float = 30.0  # broker unreachable: the upload waits this long, then is sent again
    worker_threads: int = 2  # jobs one worker process runs at once (they share forward passes)


@dataclass(frozen=True)
class Config:
    source: Path
    paths: PathsConfig
    logging: LoggingConfig
    watcher: WatcherConfig
    engine: EngineConfig
    output: OutputConfig
    profile: str
    profiles: Mapping[str, Profile]
    profiles_by_folder: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    http: HttpConfig = field(default_factory=HttpConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    events: EventsConfig = field(default_factory=EventsConfig)

    def get_profile(self, name: str | None = None) -> Profile:
        """The named profile (default: the configured one); unknown names list the valid ones."""
        return lookup_profile(self.profiles, name or self.profile)

    def profile_for(self, relative: Path) -> Profile:
        """The profile for an upload: its top-level subfolder's mapping, else the default."""
        return self.get_profile(self.profiles_by_folder.get(folder_of(relative)))


def folder_of(relative: Path) -> str:
    """The top-level folder of incoming an upload is in ("" for one at the top): what
    ``profiles_by_folder`` and an events endpoint's ``folders`` name."""
    return relative.parts[0] if len(relative.parts) > 1 else ""


def _parse_paths(s: Section) -> PathsConfig:
    keys = ("incoming", "output", "archive", "failed", "state")
    found = {k: s.take(k, Path) for k in keys}
    review = s.take("review", Path, None)
    s.done()
    cfg = PathsConfig(**found, review=review if review is not None else found["state"] / "review")
    named = [*found.items(), ("review", cfg.review)]
    for i, (name_a, a) in enumerate(named):
        for name_b, b in named[i + 1 :]:
            if a == b:
                raise ConfigError(
                    f"paths.{name_a} and paths.{name_b} are the same directory ({a}); each path needs its own"
                )
            for outer, inner, outer_name, inner_name in ((a, b, name_a, name_b), (b, a, name_b, name_a)):
                if (outer_name, inner_name) == ("state", "review"):  # private to the daemon, as state is
                    continue
                if outer in inner.parents:
                    raise ConfigError(
                        f"paths.{inner_name} ({inner}) lies inside paths.{outer_name} ({outer}); keep the paths apart"
                    )
    return cfg


def _parse_logging(s: Section) -> LoggingConfig:
    cfg = LoggingConfig(
        file=s.take("file", Path, None),
        level=s.take("level", str, "info", one_of(*LOG_LEVELS)),
        console=s.take("console", bool, True),
    )
    s.done()
    return cfg


def _parse_watcher(s: Section) -> WatcherConfig:
    cfg = WatcherConfig(
        observer=s.take("observer", str, "inotify", one_of("inotify", "polling")),
        quiet_period_s=s.take("quiet_period_s", float, 2.0, positive),
        ignore_patterns=tuple(s.take("ignore_patterns", list, list(DEFAULT_IGNORE), patterns)),
        rescan_interval_s=s.take("rescan_interval_s", float, 60.0, positive),
        polling_interval_s=s.take("polling_interval_s", float, 1.0, positive),
        decode_grace_s=s.take("decode_grace_s", float, 900.0, positive),
        max_attempts=s.take("max_attempts", int, 3, at_least(1)),
        workers=s.take("workers", int, 2, at_least(1)),
    )
    s.done()
    return cfg


def _model(s: Section) -> Path | None:
    """``engine.model``: ``auto`` (the default), or the path of a weights file."""
    value = s.take("model", str, "auto", lambda v: None if v else "must be auto or a path")
    return None if value == "auto" else (s.base / Path(value).expanduser()).resolve()


def _parse_engine(s: Section) -> EngineConfig:
    settings = EngineSettings(
        model=_model(s),
        device=s.take("device", str, DEFAULTS.device, one_of("auto", "cpu", "cuda")),
        threads=s.take("threads", int, DEFAULTS.threads, at_least(0)),
        input_size=s.take(
            "input_size",
            int,
            DEFAULTS.input_size,
            lambda v: None if v >= 32 and v % 32 == 0 else "must be a multiple of 32",
        ),
        gpu_memory_fraction=s.take(
            "gpu_memory_fraction",
            float,
            DEFAULTS.gpu_memory_fraction,
            lambda v: None if 0 < v <= 1 else "must be in (0, 1]",
        ),
        max_batch=s.take("max_batch", int, DEFAULTS.max_batch, at_least(1)),
        flip_tta=s.take("flip_tta", bool, DEFAULTS.flip_tta),
        backdrop=s.take("backdrop", str, DEFAULTS.backdrop, one_of(*BACKDROP_MODES)),
        precision=s.take("precision", str, DEFAULTS.precision, one_of(*PRECISIONS)),
    )
    cfg = EngineConfig(
        settings=settings,
        models_dir=s.take("models_dir", Path, None),
        max_input_pixels=s.take("max_input_pixels", int, 64_000_000, at_least(1)),
        processes=s.take("processes", int, 0, at_least(0)),
    )
    s.done()
    return cfg


def _parse_output(s: Section) -> OutputConfig:
    level = s.take("png_compress_level", int, 1, lambda v: None if 0 <= v <= 9 else "must be 0..9")
    s.done()
    return OutputConfig(png_compress_level=level)


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError
    return host.strip("[]"), int(port)


def _parse_http(s: Section) -> HttpConfig:
    listen = s.take("listen", str, None)
    try:
        address = None if listen is None else _listen(listen)
    except ValueError:
        raise ConfigError(f"http.listen: must look like 127.0.0.1:8081, got {listen!r}") from None
    cfg = HttpConfig(
        listen=address,
        token_file=s.take("token_file", Path, None),
        reviewer_token_file=s.take("reviewer_token_file", Path, None),
        max_body_bytes=s.take("max_body_bytes", int, HttpConfig.max_body_bytes, at_least(1)),
        max_pending=s.take("max_pending", int, HttpConfig.max_pending, at_least(1)),
        batch_roots=tuple((s.base / Path(p)).resolve() for p in s.take("batch_roots", list, [], patterns)),
        request_timeout_s=s.take("request_timeout_s", float, HttpConfig.request_timeout_s, positive),
        max_connections=s.take("max_connections", int, HttpConfig.max_connections, at_least(1)),
    )
    s.done()
    return cfg


def _parse_queue(s: Section) -> QueueConfig:
    url = s.take("broker_url", str, None)
    if url is not None and not url.startswith(("amqp://", "amqps://")):  # not echoed: it may hold a password
        raise ConfigError("queue.broker_url: must be the amqp:// or amqps:// URL of a RabbitMQ broker")
    cfg = QueueConfig(
        broker_url=url,
        jobs=s.take("jobs", str, QueueConfig.jobs, _queue_name),
        dead=s.take("dead", str, QueueConfig.dead, _queue_name),
        results=s.take("results", str, None, _queue_name),
        max_deliveries=s.take("max_deliveries", int, QueueConfig.max_deliveries, at_least(1)),
        result_timeout_s=s.take("result_timeout_s", float, QueueConfig.result_timeout_s, positive),
        retry_s=s.take("retry_s", float, QueueConfig.retry_s, positive),
        worker_threads=s.take("worker_threads", int, QueueConfig.worker_threads, at_least(1)),
    )
    s.done()
    return cfg


def _queue_name(value: str) -> str | None:
    return None if value and not value.startswith("amq.") else "must be a queue name not starting with amq."


def _check_processes(engine: EngineConfig, watcher: WatcherConfig, queue: QueueConfig) -> None:
    """``engine.processes`` renders in this daemon: each needs a worker to keep it busy, and in
    queue mode the daemon renders nothing."""
    if not engine.processes:
        return
    if queue.broker_url is not None:
        raise ConfigError(
            "engine.processes: with queue.broker_url set the queue workers render, not this daemon; "
            "set engine.processes to 0 or remove queue.broker_url"
        )
    if engine.processes > watcher.workers:
        raise ConfigError(
            f"engine.processes: {engine.processes} render processes need at least as many "
            f"watcher.workers to keep them busy, and there are {watcher.workers}"
        )


def load_config(path: Path | str) -> Config:
    """Read, validate and resolve a config file; raises ``ConfigError`` naming the bad key."""
    path = Path(path).resolve()
    return load_config_data(read_yaml(path), path)


def load_config_data(raw: Any, path: Path, profiles: Mapping[str, Profile] | None = None) -> Config:
    """Validate already-parsed YAML as if it came from ``path`` (relative paths resolve there)."""
    top = Section(raw, "", path.parent)
    paths = _parse_paths(top.section("paths"))
    logging_cfg = _parse_logging(top.section("logging"))
    watcher = _parse_watcher(top.section("watcher"))
    engine = _parse_engine(top.section("engine"))
    output = _parse_output(top.section("output"))
    http = _parse_http(top.section("http"))
    queue = _parse_queue(top.section("queue"))
    events = parse_events(top.section("events"))
    profiles_file = top.take("profiles_file", Path, str(path.parent / "profiles.yaml"))
    profile = top.take("profile", str, "ecom_product")
    by_folder = top.take("profiles_by_folder", dict, {})
    top.done()
    _check_processes(engine, watcher, queue)
    if profiles is None:
        profiles = parse_profiles(read_yaml(profiles_file), str(profiles_file))
    for key, name in [("profile", profile)] + [(f"profiles_by_folder.{k}", v) for k, v in by_folder.items()]:
        try:
            lookup_profile(profiles, str(name))
        except ConfigError as e:
            raise ConfigError(f"{key}: {e}") from None
    by_folder = MappingProxyType({str(k): str(v) for k, v in by_folder.items()})
    return Config(
        source=path,
        paths=paths,
        logging=logging_cfg,
        watcher=watcher,
        engine=engine,
        output=output,
        profile=profile,
        profiles=profiles,
        profiles_by_folder=by_folder,
        http=http,
        queue=queue,
        events=events,
    )
