"""Post-processing profiles from ``profiles.yaml`` into ``engine.profile.Profile`` values."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from unet_matting.engine.profile import Profile
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


def _profile(name: str, s: Section) -> Profile:
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
