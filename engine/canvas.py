"""Canvas layout of a cut-out: trim to the product, pad, fixed aspect, alignment, size cap."""

from __future__ import annotations

import numpy as np
from PIL import Image


def bounding_box(alpha: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), exclusive ends, of pixels with alpha > 0; None if empty."""
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def layout(rgba: np.ndarray, trim: bool, padding: float, padding_unit: str, aspect: tuple[int, int] | None,
           align: str, max_size: int) -> np.ndarray:
    """Apply the canvas steps in order; an image with no opaque pixel is left untrimmed."""
    box = bounding_box(rgba[..., 3]) if trim else None
    if box is not None:
        top, bottom, left, right = box
        rgba = rgba[top:bottom, left:right]
    h, w = rgba.shape[:2]
    pad = round(max(h, w) * padding / 100) if padding_unit == "percent" else round(padding)
    canvas_w, canvas_h = w + 2 * pad, h + 2 * pad
    if aspect is not None:
        ratio = aspect[0] / aspect[1]
        if canvas_w / canvas_h < ratio:
            canvas_w = round(canvas_h * ratio)
        else:
            canvas_h = round(canvas_w / ratio)
    out = np.zeros((canvas_h, canvas_w, 4), np.uint8)
    x = (canvas_w - w) // 2
    y = canvas_h - pad - h if align == "bottom" else (canvas_h - h) // 2
    out[y:y + h, x:x + w] = rgba
    return cap_size(out, max_size)


def cap_size(rgba: np.ndarray, max_size: int) -> np.ndarray:
    """Downscale so the longest side is at most ``max_size`` (0 = no cap); never upscales."""
    h, w = rgba.shape[:2]
    if max_size <= 0 or max(h, w) <= max_size:
        return rgba
    scale = max_size / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgba, "RGBA").resize(size, Image.LANCZOS))  # premultiplied inside


def flatten(rgba: np.ndarray, background: tuple[int, int, int] | np.ndarray) -> np.ndarray:
    """The cut-out composited over a solid colour (marketplaces that forbid transparency) or over
    an RGB image of the same size (contact sheets)."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    background = np.asarray(background, np.float32)
    return np.rint(rgba[..., :3] * alpha + background * (1 - alpha)).astype(np.uint8)
