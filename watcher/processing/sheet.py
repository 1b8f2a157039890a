"""Contact sheets: original | alpha | cut-out on a checkerboard, one row per image."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from unet_matting.engine.canvas import flatten

TILE_HEIGHT = 180
COLOURED_PAGE = (58, 120, 216)  # the blue page the docs' sheets put cut-outs on: see-through shows


def checkerboard(height: int, width: int, square: int = 12) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    light = (yy // square + xx // square) % 2 == 0
    return np.where(light[..., None], 235, 190).astype(np.uint8).repeat(3, axis=2)


def _tile(rgb: np.ndarray, height: int = TILE_HEIGHT) -> Image.Image:
    im = Image.fromarray(rgb)
    width = max(1, round(im.width * height / im.height))
    return im.resize((width, height), Image.LANCZOS)


def row(rgb: np.ndarray, rgba: np.ndarray, label: str = "", white: bool = False) -> Image.Image:
    """One row: original, alpha (grey), cut-out on checkerboard (and on white if asked).

    ``rgba`` may have another canvas than ``rgb`` (a profile that trims, pads or squares).
    """
    alpha = np.repeat(rgba[..., 3:4], 3, axis=2)
    tiles = [rgb, alpha, flatten(rgba, checkerboard(*rgba.shape[:2]))]
    if white:
        tiles.append(flatten(rgba, (255, 255, 255)))
    return strip(tiles, label)


def strip(tiles: list[np.ndarray], label: str = "", height: int = TILE_HEIGHT) -> Image.Image:
    """RGB tiles side by side at one height, with an optional label."""
    images = [_tile(t, height) for t in tiles]
    out = Image.new("RGB", (sum(i.width for i in images) + 4 * (len(images) - 1), height), "white")
    x = 0
    for im in images:
        out.paste(im, (x, 0))
        x += im.width + 4
    if label:
        ImageDraw.Draw(out).text((4, 4), label, fill=(255, 0, 0))
    return out


def stack(rows: list[Image.Image]) -> Image.Image:
    width = max(r.width for r in rows)
    sheet = Image.new("RGB", (width, sum(r.height + 4 for r in rows)), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height + 4
    return sheet
