"""Canvas layout of a cut-out: trim to the product, pad, fixed aspect, alignment, size cap."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

from unet_matting.engine.profile import Profile


def bounding_box(alpha: np.ndarray, at_least: float | None = None) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), exclusive ends, of pixels with alpha > 0 (or >= ``at_least``);
    None if empty. Row and column maxima, not a mask of the whole frame (~4x faster at 2000 px)."""
    if at_least is None:
        rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    else:
        rows, cols = np.flatnonzero(alpha.max(axis=1) >= at_least), np.flatnonzero(alpha.max(axis=0) >= at_least)
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def canvas_extent(
    height: int,
    width: int,
    profile: Profile,
    snap: Callable[[float], float] = float,
) -> tuple[float, float, float]:
    """(padding, canvas width, canvas height) around a ``height`` x ``width`` product.

    ``snap=round`` gives the pixel sizes ``layout`` draws; the default gives the exact sizes the
    output scale is computed from, before the product is shrunk.
    """
    pad = snap(max(height, width) * profile.padding / 100 if profile.padding_unit == "percent" else profile.padding)
    canvas_w, canvas_h = width + 2 * pad, height + 2 * pad
    if profile.aspect is not None:
        ratio = profile.aspect[0] / profile.aspect[1]
        if canvas_w / canvas_h < ratio:
            canvas_w = snap(canvas_h * ratio)
        else:
            canvas_h = snap(canvas_w / ratio)
    return pad, canvas_w, canvas_h


def layout(rgba: np.ndarray, profile: Profile) -> np.ndarray:
    """Apply the profile's canvas steps in order; an image with no opaque pixel is left untrimmed."""
    box = bounding_box(rgba[..., 3]) if profile.trim else None
    if box is not None:
        top, bottom, left, right = box
        rgba = rgba[top:bottom, left:right]
    h, w = rgba.shape[:2]
    pad, canvas_w, canvas_h = (int(v) for v in canvas_extent(h, w, profile, round))
    out = np.zeros((canvas_h, canvas_w, 4), np.uint8)
    x = (canvas_w - w) // 2
    y = canvas_h - pad - h if profile.align == "bottom" else (canvas_h - h) // 2
    out[y : y + h, x : x + w] = rgba
    return cap_size(out, profile.max_size)


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
    an RGB image of the same size (contact sheets).

    Over a colour, the colour and the cut-out's own pixels are copied where alpha is 0 or 255
    (what the formula gives there) and each soft pixel's channels are looked up in a table of the
    formula for every (alpha, value) pair: the same pixels as the float arithmetic."""
    if np.ndim(background) == 1:
        return _flatten_on_colour(rgba, tuple(int(c) for c in background))
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    background = np.asarray(background, np.float32)
    return np.rint(rgba[..., :3] * alpha + background * (1 - alpha)).astype(np.uint8)


def _flatten_on_colour(rgba: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    rgba = np.ascontiguousarray(rgba)
    alpha = rgba[..., 3]
    out = np.empty((*rgba.shape[:2], 3), np.uint8)
    if not out.size:
        return out
    out[0] = colour  # one row, copied down: numpy broadcasting a 3-tuple over 2000 px took 12 ms
    out[1:] = out[0]
    cv2.copyTo(cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB), cv2.compare(alpha, 255, cv2.CMP_EQ), out)
    soft = cv2.findNonZero(cv2.inRange(alpha, 1, 254))  # (x, y) pairs: ~30x np.nonzero at 2000 px
    if soft is not None:
        xs, ys = soft.reshape(-1, 2).T
        share = np.arange(256, dtype=np.float32)[:, None] / 255.0
        value = np.arange(256, dtype=np.float32)[None, :]
        index = alpha[ys, xs].astype(np.intp) << 8
        for k, c in enumerate(colour):
            table = np.rint(value * share + np.float32(c) * (1 - share)).astype(np.uint8).ravel()
            out[ys, xs, k] = table[index | rgba[ys, xs, k]]
    return out
