"""A post-processing profile: what happens to a matte after the network, as one frozen value.

Plain data with its own checks, free of numpy and torch, so the configuration parser (and the
commands that only read configuration) can build profiles without loading the image maths.
"""

from __future__ import annotations

from dataclasses import dataclass

ALIGNMENTS = ("center", "bottom")
PADDING_UNITS = ("percent", "px")


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

    def __post_init__(self) -> None:
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
        ]
        for ok, message, value in checks:
            if not ok:
                raise ValueError(f"{message}, got {value!r}")
