"""Typed values out of YAML mappings: the one reader every configuration file goes through.

Every invalid value or unknown key is a ``ConfigError`` naming its key path; nothing falls back
to a default silently. Relative paths resolve against the directory of the file that holds them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from unet_matting.watcher.errors import ConfigError

_MISSING = object()


class Section:
    """Takes typed values out of one mapping, so leftovers can be reported as unknown keys."""

    def __init__(self, raw: Any, path: str, base: Path) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path or '<top>'}: must be a mapping, got {type(raw).__name__}")
        self.raw, self.path, self.base = dict(raw), path, base

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def take(
        self, name: str, kind: type, default: Any = _MISSING, check: Callable[[Any], str | None] | None = None
    ) -> Any:
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

    def section(self, name: str) -> Section:
        return Section(self.raw.pop(name, None), self.key(name), self.base)

    def done(self) -> None:
        if self.raw:
            raise ConfigError(f"{self.key(sorted(map(str, self.raw))[0])}: unknown key")


def positive(v: float) -> str | None:
    return None if v > 0 and math.isfinite(v) else "must be > 0"


def at_least(low: int) -> Callable[[int], str | None]:
    return lambda v: None if v >= low else f"must be >= {low}"


def one_of(*choices: str) -> Callable[[str], str | None]:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def patterns(v: list) -> str | None:
    return None if all(isinstance(p, str) and p for p in v) else "must be a list of non-empty strings"


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from e
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from e
