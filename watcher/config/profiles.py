"""Post-processing profiles from ``profiles.yaml`` into ``engine.profile.Profile`` values."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from unet_matting.engine.profile import Profile, Rendition, Rules, Shadow
from unet_matting.watcher.config.yaml_sections import Section
from unet_matting.watcher.errors import ConfigError


def lookup_profile(profiles: Mapping[str, Profile], name: str) -> Profile:
    if name not in profiles:
        raise ConfigError(f"unknown profile {name!r}; valid profiles: {', '.join(sorted(profiles))}")
    return profiles[name]


def _aspect(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.split(":"))
    except ValueError:
        raise ValueError(f"aspect must look like 1:1 or 4:5, got {text!r}") from None
    return w, h


def _colour(text: str, key: str = "flat_background") -> tuple[int, int, int]:
    if len(text) != 7 or not text.startswith("#"):
        raise ValueError(f"{key} must be a colour like '#ffffff', got {text!r}")
    try:
        return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)
    except ValueError:
        raise ValueError(f"{key} must be a colour like '#ffffff', got {text!r}") from None


def _size(value: Any, key: str) -> int | tuple[int, int] | None:
    """A rendition's size: a longest side (800) or an exact box ("1000x1000")."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str):
        try:
            width, height = (int(v) for v in value.lower().split("x"))
            return width, height
        except ValueError:
            pass
    raise ValueError(f"{key} must be a longest side like 800 or a box like 1000x1000, got {value!r}")


def _dataclass_from(section: Section, cls: type, parsed: Mapping[str, Any], **fixed: Any) -> Any:
    """``cls`` from a YAML mapping: every key and default from the dataclass, some keys parsed."""
    values = dict(fixed)
    for f in dataclasses.fields(cls):
        if f.name in fixed:
            continue
        if f.name in parsed:
            raw = section.raw.pop(f.name, None)
            values[f.name] = None if raw is None else parsed[f.name](raw, section.key(f.name))
        elif f.default is dataclasses.MISSING:  # a required text value (a rendition's format)
            values[f.name] = section.take(f.name, str)
        else:
            values[f.name] = section.take(f.name, type(f.default), f.default)
    section.done()
    try:
        return cls(**values)
    except ValueError as e:
        raise ValueError(f"{section.path.split('.', 2)[-1]}: {e}") from None  # after "profiles.<name>."


def _rules(section: Section) -> Rules:
    return _dataclass_from(section, Rules, {"background": lambda v, k: _colour(_text(v, k), k)})


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, got {value!r}")
    return value


def _renditions(section: Section) -> tuple[Rendition, ...]:
    """``renditions: {name: {format, size, quality, background, rules}}``, in the order written."""
    made = []
    for name in list(section.raw):
        item = section.section(str(name))
        rules = item.section("rules") if "rules" in item.raw else None
        fixed: dict[str, Any] = {"name": str(name), "rules": None if rules is None else _rules(rules)}
        made.append(
            _dataclass_from(
                item,
                Rendition,
                {"size": _size, "background": lambda v, k: _colour(_text(v, k), k)},
                **fixed,
            )
        )
    section.done()
    return tuple(made)


def _levels(value: list) -> tuple[float, float]:
    if not (len(value) == 2 and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"levels must be two numbers like [0.05, 0.9], got {value!r}")
    return float(value[0]), float(value[1])


# Profile keys written in YAML in another form than the dataclass holds: (YAML type, parser).
_PROFILE_PARSED = {"aspect": (str, _aspect), "flat_background": (str, _colour), "levels": (list, _levels)}


def _profile(name: str, s: Section) -> Profile:
    """A profile from YAML; every key and default comes from ``engine.profile.Profile`` itself."""
    values: dict[str, Any] = {"name": name}
    for f in dataclasses.fields(Profile):
        if f.name == "name":
            continue
        if f.name == "renditions":
            values[f.name] = _renditions(s.section(f.name))
        elif f.name == "shadow":
            values[f.name] = _dataclass_from(s.section(f.name), Shadow, {})
        elif f.name in _PROFILE_PARSED:
            kind, parse = _PROFILE_PARSED[f.name]
            raw = s.take(f.name, kind, None)
            values[f.name] = None if raw is None else parse(raw)
        else:
            values[f.name] = s.take(f.name, type(f.default), f.default)
    return Profile(**values)


def parse_profiles(raw: Any, where: str) -> Mapping[str, Profile]:
    """Profiles mapping ``name -> settings``; see ``engine.postprocess.Profile`` for the keys."""
    top = Section(raw, "profiles", Path("."))
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
