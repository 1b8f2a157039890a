"""Configuration: YAML parsed once, at the edge, into frozen dataclasses.

Every invalid value or unknown key is a ``ConfigError`` naming its key path; nothing falls back
to a default silently. Relative paths resolve against the directory of the file that holds them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from engine.profile import Profile
from engine.settings import DEFAULTS, EngineSettings
from watcher.errors import ConfigError

DEFAULT_IGNORE = (".*", "*.filepart", "*.part", "*.partial", "*.tmp", "~*", "*.crdownload")
LOG_LEVELS = ("debug", "info", "warning", "error")
_MISSING = object()


@dataclass(frozen=True)
class PathsConfig:
    incoming: Path
    output: Path
    archive: Path
    failed: Path
    state: Path


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


@dataclass(frozen=True)
class OutputConfig:
    png_compress_level: int


@dataclass(frozen=True)
class HttpConfig:
    """``http:``: the API inside ``watch`` (off unless ``listen`` is set)."""

    listen: tuple[str, int] | None = None
    token_file: Path | None = None
    max_body_bytes: int = 50_000_000
    max_pending: int = 16
    batch_roots: tuple[Path, ...] = ()  # folders batch requests may read from and write to


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

    def get_profile(self, name: str | None = None) -> Profile:
        """The named profile (default: the configured one); unknown names list the valid ones."""
        return lookup_profile(self.profiles, name or self.profile)

    def profile_for(self, relative: Path) -> Profile:
        """The profile for an upload: its top-level subfolder's mapping, else the default."""
        folder = relative.parts[0] if len(relative.parts) > 1 else ""
        return self.get_profile(self.profiles_by_folder.get(folder))


def lookup_profile(profiles: Mapping[str, Profile], name: str) -> Profile:
    if name not in profiles:
        raise ConfigError(f"unknown profile {name!r}; valid profiles: {', '.join(sorted(profiles))}")
    return profiles[name]


class _Section:
    """Takes typed values out of one mapping, so leftovers can be reported as unknown keys."""

    def __init__(self, raw: Any, path: str, base: Path) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path or '<top>'}: must be a mapping, got {type(raw).__name__}")
        self.raw, self.path, self.base = dict(raw), path, base

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def take(self, name: str, kind: type, default: Any = _MISSING,
             check: Callable[[Any], str | None] | None = None) -> Any:
        value = self.raw.pop(name, default)
        if value is _MISSING:
            raise ConfigError(f"{self.key(name)}: required")
        if value is None and default is None:
            return None
        value = self._coerce(name, value, kind)
        problem = check(value) if check else None
        if problem:
            raise ConfigError(f"{self.key(name)}: {problem}, got {value!r}")
        return value

    def _coerce(self, name: str, value: Any, kind: type) -> Any:
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if kind is Path and isinstance(value, str) and value:
            return (self.base / Path(value).expanduser()).resolve()
        if not ok:
            raise ConfigError(f"{self.key(name)}: expected {kind.__name__}, got {value!r}")
        return value

    def section(self, name: str) -> _Section:
        return _Section(self.raw.pop(name, None), self.key(name), self.base)

    def done(self) -> None:
        if self.raw:
            raise ConfigError(f"{self.key(sorted(map(str, self.raw))[0])}: unknown key")


def _positive(v: float) -> str | None:
    return None if v > 0 and math.isfinite(v) else "must be > 0"


def _at_least(low: int) -> Callable[[int], str | None]:
    return lambda v: None if v >= low else f"must be >= {low}"


def _one_of(*choices: str) -> Callable[[str], str | None]:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def _patterns(v: list) -> str | None:
    return None if all(isinstance(p, str) and p for p in v) else "must be a list of non-empty strings"


def _parse_paths(s: _Section) -> PathsConfig:
    cfg = PathsConfig(*(s.take(k, Path) for k in ("incoming", "output", "archive", "failed", "state")))
    s.done()
    named = [(name, getattr(cfg, name)) for name in ("incoming", "output", "archive", "failed", "state")]
    for i, (name_a, a) in enumerate(named):
        for name_b, b in named[i + 1:]:
            if a == b:
                raise ConfigError(f"paths.{name_a} and paths.{name_b} are the same directory ({a}); "
                                  "each of the five paths needs its own")
            for outer, inner, outer_name, inner_name in ((a, b, name_a, name_b), (b, a, name_b, name_a)):
                if outer in inner.parents:
                    raise ConfigError(f"paths.{inner_name} ({inner}) lies inside paths.{outer_name} ({outer}); "
                                      "keep the five paths apart")
    return cfg


def _parse_logging(s: _Section) -> LoggingConfig:
    cfg = LoggingConfig(s.take("file", Path, None), s.take("level", str, "info", _one_of(*LOG_LEVELS)),
                        s.take("console", bool, True))
    s.done()
    return cfg


def _parse_watcher(s: _Section) -> WatcherConfig:
    cfg = WatcherConfig(
        observer=s.take("observer", str, "inotify", _one_of("inotify", "polling")),
        quiet_period_s=s.take("quiet_period_s", float, 2.0, _positive),
        ignore_patterns=tuple(s.take("ignore_patterns", list, list(DEFAULT_IGNORE), _patterns)),
        rescan_interval_s=s.take("rescan_interval_s", float, 60.0, _positive),
        polling_interval_s=s.take("polling_interval_s", float, 1.0, _positive),
        decode_grace_s=s.take("decode_grace_s", float, 900.0, _positive),
        max_attempts=s.take("max_attempts", int, 3, _at_least(1)),
        workers=s.take("workers", int, 2, _at_least(1)),
    )
    s.done()
    return cfg


def _model(s: _Section) -> Path | None:
    """``engine.model``: ``auto`` (the default), or the path of a weights file."""
    value = s.take("model", str, "auto", lambda v: None if v else "must be auto or a path")
    return None if value == "auto" else (s.base / Path(value).expanduser()).resolve()


def _parse_engine(s: _Section) -> EngineConfig:
    settings = EngineSettings(
        model=_model(s),
        device=s.take("device", str, DEFAULTS.device, _one_of("auto", "cpu", "cuda")),
        threads=s.take("threads", int, DEFAULTS.threads, _at_least(0)),
        input_size=s.take("input_size", int, DEFAULTS.input_size,
                          lambda v: None if v >= 32 and v % 32 == 0 else "must be a multiple of 32"),
        gpu_memory_fraction=s.take("gpu_memory_fraction", float, DEFAULTS.gpu_memory_fraction,
                                   lambda v: None if 0 < v <= 1 else "must be in (0, 1]"),
        max_batch=s.take("max_batch", int, DEFAULTS.max_batch, _at_least(1)),
        flip_tta=s.take("flip_tta", bool, DEFAULTS.flip_tta),
    )
    cfg = EngineConfig(settings, models_dir=s.take("models_dir", Path, None),
                       max_input_pixels=s.take("max_input_pixels", int, 64_000_000, _at_least(1)))
    s.done()
    return cfg


def _parse_output(s: _Section) -> OutputConfig:
    level = s.take("png_compress_level", int, 1, lambda v: None if 0 <= v <= 9 else "must be 0..9")
    s.done()
    return OutputConfig(level)


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError
    return host.strip("[]"), int(port)


def _parse_http(s: _Section) -> HttpConfig:
    listen = s.take("listen", str, None)
    try:
        address = None if listen is None else _listen(listen)
    except ValueError:
        raise ConfigError(f"http.listen: must look like 127.0.0.1:8081, got {listen!r}") from None
    cfg = HttpConfig(address, s.take("token_file", Path, None),
                     s.take("max_body_bytes", int, HttpConfig.max_body_bytes, _at_least(1)),
                     s.take("max_pending", int, HttpConfig.max_pending, _at_least(1)),
                     tuple((s.base / Path(p)).resolve() for p in s.take("batch_roots", list, [], _patterns)))
    s.done()
    return cfg


def _aspect(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.split(":"))
    except ValueError:
        raise ValueError(f"aspect must look like 1:1 or 4:5, got {text!r}") from None
    return w, h


def _colour(text: str) -> tuple[int, int, int]:
    if len(text) != 7 or not text.startswith("#"):
        raise ValueError(f"flat_background must be a colour like '#ffffff', got {text!r}")
    try:
        return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)
    except ValueError:
        raise ValueError(f"flat_background must be a colour like '#ffffff', got {text!r}") from None


def _levels(value: list) -> tuple[float, float]:
    if not (len(value) == 2 and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"levels must be two numbers like [0.05, 0.9], got {value!r}")
    return float(value[0]), float(value[1])


# Profile keys written in YAML in another form than the dataclass holds: (YAML type, parser).
_PROFILE_PARSED = {"aspect": (str, _aspect), "flat_background": (str, _colour), "levels": (list, _levels)}


def _profile(name: str, s: _Section) -> Profile:
    """A profile from YAML; every key and default comes from ``engine.profile.Profile`` itself."""
    values: dict[str, Any] = {"name": name}
    for f in dataclasses.fields(Profile):
        if f.name == "name":
            continue
        if f.name in _PROFILE_PARSED:
            kind, parse = _PROFILE_PARSED[f.name]
            raw = s.take(f.name, kind, None)
            values[f.name] = None if raw is None else parse(raw)
        else:
            values[f.name] = s.take(f.name, type(f.default), f.default)
    return Profile(**values)


def parse_profiles(raw: Any, where: str) -> Mapping[str, Profile]:
    """Profiles mapping ``name -> settings``; see ``engine.postprocess.Profile`` for the keys."""
    top = _Section(raw, "profiles", Path("."))
    profiles = {}
    for name in list(top.raw):
        s = top.section(str(name))
        try:
            profiles[str(name)] = _profile(str(name), s)
        except ValueError as e:
            raise ConfigError(f"{where}: profiles.{name}: {e}") from None
        s.done()
    if not profiles:
        raise ConfigError(f"{where}: defines no profiles")
    return MappingProxyType(profiles)


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from e
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from e


def load_config(path: Path | str) -> Config:
    """Read, validate and resolve a config file; raises ``ConfigError`` naming the bad key."""
    path = Path(path).resolve()
    return load_config_data(read_yaml(path), path)


def load_config_data(raw: Any, path: Path, profiles: Mapping[str, Profile] | None = None) -> Config:
    """Validate already-parsed YAML as if it came from ``path`` (relative paths resolve there)."""
    top = _Section(raw, "", path.parent)
    paths = _parse_paths(top.section("paths"))
    logging_cfg = _parse_logging(top.section("logging"))
    watcher = _parse_watcher(top.section("watcher"))
    engine = _parse_engine(top.section("engine"))
    output = _parse_output(top.section("output"))
    http = _parse_http(top.section("http"))
    profiles_file = top.take("profiles_file", Path, str(path.parent / "profiles.yaml"))
    profile = top.take("profile", str, "ecom_product")
    by_folder = top.take("profiles_by_folder", dict, {})
    top.done()
    if profiles is None:
        profiles = parse_profiles(read_yaml(profiles_file), str(profiles_file))
    for key, name in [("profile", profile)] + [(f"profiles_by_folder.{k}", v) for k, v in by_folder.items()]:
        try:
            lookup_profile(profiles, str(name))
        except ConfigError as e:
            raise ConfigError(f"{key}: {e}") from None
    by_folder = MappingProxyType({str(k): str(v) for k, v in by_folder.items()})
    return Config(path, paths, logging_cfg, watcher, engine, output, profile, profiles, by_folder, http)
