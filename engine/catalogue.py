"""The model catalogue: every public model the engine knows, read once from ``catalogue.yaml``.

An entry says how to run a model (backend, input size, normalisation, output kind) and how to
obtain it (public sources, checksums, licence). A model file that is not in the catalogue runs
with its architecture's defaults (``defaults_for``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from unet_matting.engine.errors import ModelError

CATALOGUE_FILE = Path(__file__).with_name("catalogue.yaml")
SHIPPED_MODEL = Path(__file__).with_name("weights") / "u2netp-products.pth"  # the offline fallback
BACKENDS = ("torch", "onnxruntime")
OUTPUTS = ("logits", "probabilities")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """How a network wants its input and gives its output."""

    input_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    output: str = "logits"
    cpu_input_size: int | None = None

    def size_on(self, device_type: str) -> int:
        """The input side for a device: the CPU may run a smaller, measured size."""
        return self.cpu_input_size if device_type == "cpu" and self.cpu_input_size else self.input_size


@dataclass(frozen=True)
class Source:
    """One public place a model can be fetched from: a URL, or a resource inside an npm package."""

    url: str | None = None
    npm: str | None = None
    resource: str | None = None

    def describe(self) -> str:
        return self.url or f"npm {self.npm} {self.resource}"


@dataclass(frozen=True)
class Entry:
    name: str
    title: str
    file: str
    backend: str
    preprocessing: Preprocessing
    rank: int
    commercial: bool
    licence: str
    size: int | None
    sha256: str | None
    md5: str | None
    sources: tuple[Source, ...]
    quality: Mapping[str, tuple[float, float]]
    cpu_quality: Mapping[str, tuple[float, float]] = field(default_factory=lambda: MappingProxyType({}))

    def quality_at(self, size: int) -> Mapping[str, tuple[float, float]]:
        """The measured quality at input side ``size``; empty where the catalogue has no figures."""
        if size == self.preprocessing.input_size:
            return self.quality
        return self.cpu_quality if size == self.preprocessing.cpu_input_size else MappingProxyType({})


# Architecture defaults for model files the catalogue does not name (imported checkpoints).
ARCH_DEFAULTS = MappingProxyType(
    {
        "u2net": Preprocessing(320),
        "u2netp": Preprocessing(320),
        "isnet": Preprocessing(1024, (0.5, 0.5, 0.5), (1.0, 1.0, 1.0)),
        "isnet-tiny": Preprocessing(64, (0.5, 0.5, 0.5), (1.0, 1.0, 1.0)),
    }
)


def _entry(name: str, raw: dict[str, Any]) -> Entry:
    try:
        pre = Preprocessing(
            int(raw["input_size"]), tuple(raw["mean"]), tuple(raw["std"]), raw["output"], raw.get("cpu_input_size")
        )
        entry = Entry(
            name,
            raw["title"],
            raw["file"],
            raw["backend"],
            pre,
            int(raw["rank"]),
            bool(raw["commercial"]),
            raw["licence"],
            raw.get("size"),
            raw.get("sha256"),
            raw.get("md5"),
            tuple(Source(**s) for s in raw["sources"]),
            _figures(raw.get("quality")),
            _figures(raw.get("cpu_quality")),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{CATALOGUE_FILE}: model {name}: {e}") from e
    if entry.backend not in BACKENDS or pre.output not in OUTPUTS or pre.input_size % 32:
        raise ModelError(f"{CATALOGUE_FILE}: model {name}: bad backend, output or input_size")
    return entry


def _figures(raw: dict | None) -> Mapping[str, tuple[float, float]]:
    return MappingProxyType({k: tuple(v) for k, v in (raw or {}).items()})


def parse(raw: Any) -> Mapping[str, Entry]:
    if not isinstance(raw, dict):
        raise ModelError(f"{CATALOGUE_FILE}: expected a mapping of model names")
    return MappingProxyType({str(name): _entry(str(name), spec) for name, spec in raw.items()})


@functools.cache
def catalogue() -> Mapping[str, Entry]:
    """All known models by name, in the file's order."""
    return parse(yaml.safe_load(CATALOGUE_FILE.read_text(encoding="utf-8")))


def lookup(name: str) -> Entry:
    """The entry called ``name``; an unknown name lists the known ones."""
    entries = catalogue()
    if name not in entries:
        raise ModelError(f"no model called {name!r} in the catalogue; known: {', '.join(entries)}")
    return entries[name]


def entry_for_file(path: Path) -> Entry | None:
    """The catalogue entry whose file name this is, if any."""
    return next((e for e in catalogue().values() if e.file == path.name), None)


def defaults_for(arch: str) -> Preprocessing:
    return ARCH_DEFAULTS[arch]
