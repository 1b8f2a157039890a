"""Marketplace rules, checked on each rendition after it is encoded: one sentence per failure.

A rule never changes a file (nothing is upscaled or recoloured to pass); it tells the manifest,
the ``job_finished`` line and ``/metrics`` which rule failed and by how much.
"""

from __future__ import annotations

import math

import numpy as np

from unet_matting.engine.renditions import Drawn
from unet_matting.watcher.processing.imageio import written_rgb

BORDER_SHARE = 0.01  # the background rule looks at the outer 1 % of each side (at least 2 px)
RULES = ("min_longest_side", "min_fill_percent", "background")  # metric labels, in checking order


def failures(drawn: Drawn, data: bytes) -> list[tuple[str, str]]:
    """(rule, sentence) for every rule of ``drawn``'s rendition that its file ``data`` breaks."""
    rules = drawn.rendition.rules
    if rules is None:
        return []
    label = drawn.rendition.label
    found = []
    longest = max(drawn.width, drawn.height)
    if longest < rules.min_longest_side:
        found.append(
            (
                "min_longest_side",
                f"{label}: longest side {longest} px (< {rules.min_longest_side} px): the photo is too small",
            )
        )
    percent = math.floor(drawn.fill * 1000) / 10  # 84.96 reads 84.9, never "85 % (< 85 %)"
    if percent < rules.min_fill_percent:
        found.append(
            ("min_fill_percent", f"{label}: product fills {percent:g} % of the frame (< {rules.min_fill_percent:g} %)")
        )
    if rules.background is not None and (off := _off_background(written_rgb(data), rules.background)) is not None:
        share, furthest = off
        wanted = "#{:02x}{:02x}{:02x}".format(*rules.background)
        found.append(
            (
                "background",
                f"{label}: background is not exactly {wanted}: {share:.1f} % of the border pixels differ "
                f"(furthest {furthest[0]},{furthest[1]},{furthest[2]})",
            )
        )
    return found


def _off_background(rgb: np.ndarray, colour: tuple[int, int, int]) -> tuple[float, tuple[int, ...]] | None:
    """(share in percent, the most different pixel) of border pixels that are not ``colour``."""
    height, width = rgb.shape[:2]
    band = max(2, round(min(height, width) * BORDER_SHARE))
    border = np.ones((height, width), bool)
    border[band:-band, band:-band] = False
    pixels = rgb[border].astype(np.int16)
    distance = np.abs(pixels - np.array(colour, np.int16)).max(axis=1)
    wrong = distance > 0
    if not wrong.any():
        return None
    return 100.0 * wrong.mean(), tuple(int(v) for v in pixels[int(distance.argmax())])


def summary(found: list[tuple[str, str]]) -> dict:
    """The manifest's ``validation``: passed, and the failures' sentences."""
    return {"passed": not found, "failures": [sentence for _, sentence in found]}
