"""A post-processing profile: what happens to a matte after the network, as one frozen value.

Plain data with its own checks, free of numpy and torch, so the configuration parser (and the
commands that only read configuration) can build profiles without loading the image maths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ALIGNMENTS = ("center", "bottom")
PADDING_UNITS = ("percent", "px")
FORMATS = ("png", "webp", "jpeg", "mask")  # a rendition's file: RGBA PNG, RGBA WebP, JPEG on a colour, the matte
EXTENSIONS = {"png": ".png", "webp": ".webp", "jpeg": ".jpg", "mask": ".png"}
SHADOW_KINDS = ("none", "contact", "drop")
RENDITION_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
RESERVED_NAMES = ("json", "review", "error")  # <stem>.json is the manifest; review and error files


def _failing(checks: list[tuple[bool, str, object]]) -> None:
    for ok, message, value in checks:
        if not ok:
            raise ValueError(f"{message}, got {value!r}")


@dataclass(frozen=True)
class Shadow:
    """A shadow made from the matte, under the product on the output canvas.

    ``contact``: the product's footprint squashed into a thin band and blurred, under its lowest
    row (the product stands on the page); ``drop``: the whole silhouette moved ``offset`` along
    ``angle`` (degrees clockwise from pointing right, so 90 falls straight down) and blurred.
    ``offset`` and ``softness`` (the blur's sigma) are in percent of the product's longest side,
    so every rendition size looks the same. ``opacity`` is the darkest the shadow gets (0..1).
    Flat-background renditions always get it; transparent ones only with ``transparent``.
    """

    kind: str = "none"
    opacity: float = 0.35
    softness: float = 2.0
    offset: float = 3.0
    angle: float = 60.0
    transparent: bool = False

    def __post_init__(self) -> None:
        _failing(
            [
                (self.kind in SHADOW_KINDS, f"kind must be one of {', '.join(SHADOW_KINDS)}", self.kind),
                (0.0 <= self.opacity <= 1.0, "opacity must be in [0, 1]", self.opacity),
                (0.0 <= self.softness <= 25.0, "softness must be in [0, 25] (percent)", self.softness),
                (0.0 <= self.offset <= 25.0, "offset must be in [0, 25] (percent)", self.offset),
                (-360.0 <= self.angle <= 360.0, "angle must be in [-360, 360] degrees", self.angle),
            ]
        )

    @property
    def on(self) -> bool:
        return self.kind != "none" and self.opacity > 0


@dataclass(frozen=True)
class Rules:
    """What a rendition must satisfy to be accepted by a marketplace; checked after rendering.

    ``background``: the border of the (flat) file exactly this colour; ``min_fill_percent``: the
    product spans at least this share of the frame along one side; ``min_longest_side``: px.
    """

    background: tuple[int, int, int] | None = None
    min_fill_percent: float = 0.0
    min_longest_side: int = 0

    def __post_init__(self) -> None:
        _failing(
            [
                (0.0 <= self.min_fill_percent <= 100.0, "min_fill_percent must be in [0, 100]", self.min_fill_percent),
                (self.min_longest_side >= 0, "min_longest_side must be >= 0", self.min_longest_side),
            ]
        )


@dataclass(frozen=True)
class Rendition:
    """One file of a cut-out's set: ``<stem>.<name><ext>`` (``name`` None: today's unnamed
    ``<stem>.png``, ``<stem>.jpg``, ``<stem>.mask.png``).

    ``size``: the longest side in px (an int), or an exact ``(width, height)`` box; None keeps the
    profile's canvas. Never upscaled: a photo too small for the size gives a smaller file (a box
    keeps its shape). ``quality`` for WebP and JPEG; ``background`` the JPEG's colour.
    """

    name: str | None
    format: str
    size: int | tuple[int, int] | None = None
    quality: int = 90
    background: tuple[int, int, int] | None = None
    rules: Rules | None = None

    def __post_init__(self) -> None:
        box = isinstance(self.size, tuple)
        _failing(
            [
                (self.format in FORMATS, f"format must be one of {', '.join(FORMATS)}", self.format),
                (
                    self.name is None or (RENDITION_NAME.fullmatch(self.name) and self.name not in RESERVED_NAMES),
                    "a rendition name is 1-32 of a-z, 0-9, _ and - (not json, review or error)",
                    self.name,
                ),
                (
                    self.size is None
                    or (box and len(self.size) == 2 and min(self.size) >= 16)
                    or (not box and self.size >= 16),
                    "size must be a longest side >= 16 px or a box like 1000x1000",
                    self.size,
                ),
                (1 <= self.quality <= 100, "quality must be in 1..100", self.quality),
                (
                    self.rules is None or self.rules.background is None or self.format == "jpeg",
                    "a background rule checks a JPEG's colour; this rendition's format is",
                    self.format,
                ),
                (
                    self.background is not None or self.format != "jpeg",
                    "format jpeg needs a background colour like '#ffffff'",
                    self.background,
                ),
                (
                    self.background is None or self.format == "jpeg",
                    "background is the colour under a JPEG; other formats keep their transparency",
                    self.background,
                ),
            ]
        )

    @property
    def label(self) -> str:
        """The rendition's name in manifests and messages (today's unnamed files: their role)."""
        return self.name or {"png": "cutout", "jpeg": "flat", "mask": "mask", "webp": "cutout"}[self.format]

    @property
    def suffix(self) -> str:
        if self.name is None:
            return ".mask.png" if self.format == "mask" else EXTENSIONS[self.format]
        return f".{self.name}{EXTENSIONS[self.format]}"

    @property
    def flat(self) -> bool:
        return self.format == "jpeg"

    @property
    def transparent(self) -> bool:
        return self.format in ("png", "webp")


@dataclass(frozen=True)
class Profile:
    """What happens after the network, in this order.

    Matte: ``drop_ghosts`` (islands that never reach half opacity go), ``alpha_threshold`` (alpha
    below it becomes 0), ``levels`` (low, high: stretched to 0..1), ``solid_interior`` (alpha 1
    more than ``edge_band_px`` inside the outline, unsure enclosed regions included),
    ``erosion_kernel`` (odd side of a min-filter pulling the edge in, 0 = off),
    ``edge_feathering`` (Gaussian sigma in px, 0 = off).
    ``see_through``: on a studio backdrop, alpha inside the product is measured from how much
    each pixel differs from the backdrop behind it (difference keying: clear glass and plastic
    stay see-through, labels and caps opaque); elsewhere it does nothing.
    Colour: ``decontaminate`` (estimate the foreground colour on soft edges, removing backdrop
    fringes), ``clear_transparent`` (RGB 0 where alpha is 0: smaller PNGs, nothing leaks).
    Canvas: ``trim`` to the product, ``padding`` (``padding_unit`` percent of the product's long
    side, or px), ``aspect`` (w, h) canvas or None, ``align`` center|bottom, ``max_size`` px (0 = off).
    Extra outputs: ``flat_background`` RGB for a JPEG on that colour (None = no JPEG),
    ``flat_quality``, ``write_mask`` (the bare matte as a greyscale PNG).
    Renditions: ``renditions`` (a tuple of ``Rendition``): the files of the set, replacing the
    three extra outputs above (a profile uses one or the other); ``shadow`` (``Shadow``).
    Review: ``review_below`` (0..1, 0 = off): a cut-out whose confidence score
    (engine/confidence.py) is below it is held in ``paths.review`` for a person instead of
    being published.
    """

    name: str
    drop_ghosts: bool = False
    see_through: bool = False
    alpha_threshold: float = 0.0
    levels: tuple[float, float] | None = None
    solid_interior: bool = False
    edge_band_px: int = 3
    erosion_kernel: int = 0
    edge_feathering: float = 0.0
    decontaminate: bool = False
    clear_transparent: bool = True
    trim: bool = False
    padding: float = 0.0
    padding_unit: str = "percent"
    aspect: tuple[int, int] | None = None
    align: str = "center"
    max_size: int = 0
    flat_background: tuple[int, int, int] | None = None
    flat_quality: int = 90
    write_mask: bool = False
    review_below: float = 0.0
    renditions: tuple[Rendition, ...] = ()
    shadow: Shadow = field(default_factory=Shadow)

    def __post_init__(self) -> None:
        names = [r.name for r in self.renditions]
        largest = max((max(r.size) if isinstance(r.size, tuple) else r.size or 0 for r in self.renditions), default=0)
        checks = [
            (0.0 <= self.alpha_threshold < 1.0, "alpha_threshold must be in [0, 1)", self.alpha_threshold),
            (
                self.levels is None or (len(self.levels) == 2 and 0.0 <= self.levels[0] < self.levels[1] <= 1.0),
                "levels must be two numbers low < high in [0, 1]",
                self.levels,
            ),
            (0 <= self.edge_band_px <= 50, "edge_band_px must be in 0..50", self.edge_band_px),
            (
                self.erosion_kernel >= 0 and (self.erosion_kernel == 0 or self.erosion_kernel % 2 == 1),
                "erosion_kernel must be 0 or an odd size",
                self.erosion_kernel,
            ),
            (0.0 <= self.edge_feathering <= 50.0, "edge_feathering must be in [0, 50]", self.edge_feathering),
            (self.padding >= 0, "padding must be >= 0", self.padding),
            (self.padding_unit in PADDING_UNITS, f"padding_unit must be one of {PADDING_UNITS}", self.padding_unit),
            (
                self.aspect is None or (len(self.aspect) == 2 and min(self.aspect) > 0),
                "aspect must be two positive numbers like 1:1",
                self.aspect,
            ),
            (self.align in ALIGNMENTS, f"align must be one of {ALIGNMENTS}", self.align),
            (self.max_size >= 0, "max_size must be >= 0", self.max_size),
            (1 <= self.flat_quality <= 100, "flat_quality must be in 1..100", self.flat_quality),
            (0.0 <= self.review_below <= 1.0, "review_below must be in [0, 1]", self.review_below),
            (
                not self.renditions or (self.flat_background is None and not self.write_mask),
                "a profile with renditions lists its JPEG and mask there, not in flat_background or write_mask",
                self.flat_background or self.write_mask,
            ),
            (len(set(names)) == len(names), "rendition names must differ", names),
            (
                self.max_size == 0 or largest <= self.max_size,
                f"a rendition is larger than max_size {self.max_size} px and would never reach its size",
                largest,
            ),
        ]
        _failing(checks)

    @property
    def outputs(self) -> tuple[Rendition, ...]:
        """The files of a cut-out's set, the main one first: the renditions, or today's
        ``<stem>.png`` with the optional ``<stem>.jpg`` and ``<stem>.mask.png``."""
        if self.renditions:
            return self.renditions
        made = [Rendition(None, "png")]
        if self.flat_background is not None:
            made.append(Rendition(None, "jpeg", quality=self.flat_quality, background=self.flat_background))
        if self.write_mask:
            made.append(Rendition(None, "mask"))
        return tuple(made)

    @property
    def validated(self) -> bool:
        """Whether some rendition has rules (the manifest then carries ``validation``)."""
        return any(r.rules is not None for r in self.outputs)
