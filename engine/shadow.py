"""Shadows made from the matte on the output canvas, so a product stands on the page.

Pure numpy (and Pillow's C blur on a reduced copy) on the finished canvas: the shadow is an
alpha layer of black under the product, composited with the ``over`` operator, so the product's
own pixels never change where it is opaque and a shadow off leaves the canvas untouched.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from PIL import Image, ImageFilter

from unet_matting.engine.canvas import bounding_box
from unet_matting.engine.profile import Shadow

BODY_ALPHA = 128  # the product's body for the shadow's geometry: at least half opaque
FOOTPRINT_SHARE = 0.04  # the bottom share of the product's height that stands on the floor
CONTACT_DEPTH = 0.03  # a contact shadow reaches this share of the product's size below its base (inside 5 % air)
CONTACT_FADE = 0.35  # ...its darkness falling to 1/e over this share of that depth
ALPHA_SHIFT = np.uint32(24 if sys.byteorder == "little" else 0)  # where an RGBA pixel's alpha byte sits in a uint32
BLUR_WORKING_SIGMA = 2.0  # drop shadows are blurred on a copy reduced until sigma is about this


def shadow_layer(alpha: np.ndarray, shadow: Shadow) -> np.ndarray | None:
    """The shadow's opacity (HxW uint8, 0..255 x ``shadow.opacity``) for a canvas with product
    alpha ``alpha`` (HxW uint8); None when the shadow is off or there is no product body."""
    if not shadow.on:
        return None
    body = bounding_box(alpha, BODY_ALPHA)
    if body is None:
        return None
    top, bottom, left, right = body
    longest = max(bottom - top, right - left)
    sigma = max(0.5, shadow.softness / 100 * longest)
    table = np.rint(np.arange(256) * shadow.opacity).astype(np.uint8)
    if shadow.kind == "contact":
        return _contact(alpha, body, sigma, table)
    return _drop(alpha, shadow, longest, sigma, table)


def _contact(alpha: np.ndarray, body: tuple[int, int, int, int], sigma: float, table: np.ndarray) -> np.ndarray:
    """Under the base, the visible half of an ellipse: as wide as the footprint (the columns of
    the product's lowest rows) where it meets the floor, narrowing and fading downwards, its edges
    blurred by ``sigma``. It starts at the product's lowest row, never above it."""
    top, bottom, left, right = body
    height, width = alpha.shape
    band = max(1, round((bottom - top) * FOOTPRINT_SHARE))
    footprint = alpha[bottom - band : bottom].max(axis=0).astype(np.float32) / 255.0
    base = bottom - 1  # the lowest row of the body
    depth = max(3.0, CONTACT_DEPTH * max(bottom - top, right - left))
    rows = np.arange(min(height - base, int(depth) + 1), dtype=np.float32)
    narrowing = np.sqrt(np.clip(1 - (rows / depth) ** 2, 1e-6, 1))
    fade = np.exp(-rows / (CONTACT_FADE * depth))
    columns = np.arange(width, dtype=np.float32)
    centre = float((footprint * columns).sum() / max(footprint.sum(), 1e-6))
    shape = np.stack([np.interp(centre + (columns - centre) / k, columns, footprint, 0, 0) for k in narrowing])
    shape *= fade[:, None]
    blurred = Image.fromarray(np.rint(shape * 255).astype(np.uint8), "L").filter(ImageFilter.GaussianBlur(sigma / 2))
    layer = np.zeros((height, width), np.uint8)
    darkest = max(1, int(np.asarray(blurred).max()))  # the blur must not lighten the contact itself
    stretch = np.minimum(np.rint(np.arange(256) * 255.0 / darkest), 255).astype(np.intp)
    layer[base : base + len(rows)] = table[stretch[np.asarray(blurred)]]
    return layer


def _drop(alpha: np.ndarray, shadow: Shadow, longest: int, sigma: float, table: np.ndarray) -> np.ndarray:
    """The silhouette moved ``offset`` along ``angle`` and blurred by ``sigma``.

    The blur runs on a copy reduced by an integer factor (a shadow this soft has no detail a
    reduction loses), then is brought back with bilinear interpolation where it is not empty."""
    height, width = alpha.shape
    distance = shadow.offset / 100 * longest
    dx = round(distance * math.cos(math.radians(shadow.angle)))
    dy = round(distance * math.sin(math.radians(shadow.angle)))
    moved = np.zeros_like(alpha)
    ys, yd = (slice(0, height - dy), slice(dy, height)) if dy >= 0 else (slice(-dy, height), slice(0, height + dy))
    xs, xd = (slice(0, width - dx), slice(dx, width)) if dx >= 0 else (slice(-dx, width), slice(0, width + dx))
    moved[yd, xd] = alpha[ys, xs]
    factor = max(1, int(sigma / BLUR_WORKING_SIGMA))
    small = Image.fromarray(moved, "L")
    if factor > 1:
        small = small.reduce(factor)
    small = small.filter(ImageFilter.GaussianBlur(sigma / factor))
    small = small.point(table.tolist())  # the opacity, on the reduced copy
    if factor == 1:
        return np.asarray(small)
    return _enlarged(small, width, height)


def _enlarged(small: Image.Image, width: int, height: int) -> np.ndarray:
    """``small`` resized bilinearly to ``width`` x ``height`` (HxW uint8), computed only where it
    can be non-zero: the output's pixels two source pixels round the shadow (a bilinear tap
    reaches one), with the same source coordinates as a whole resize (Pillow's ``box``)."""
    layer = np.zeros((height, width), np.uint8)
    box = bounding_box(np.asarray(small))
    if box is None:
        return layer
    sx, sy = small.width / width, small.height / height  # source px per output px
    top, bottom, left, right = box
    y0, y1 = max(0, math.floor((top - 2) / sy)), min(height, math.ceil((bottom + 2) / sy))
    x0, x1 = max(0, math.floor((left - 2) / sx)), min(width, math.ceil((right + 2) / sx))
    part = small.resize((x1 - x0, y1 - y0), Image.BILINEAR, box=(x0 * sx, y0 * sy, x1 * sx, y1 * sy))
    layer[y0:y1, x0:x1] = np.asarray(part)
    return layer


def cast(rgba: np.ndarray, layer: np.ndarray | None) -> np.ndarray:
    """The product over its shadow (black at ``layer``'s opacity): RGBA uint8.

    ``over`` by cases, in the shadow's box only: where the product is opaque nothing changes;
    where it is absent the pixel is the shadow itself (black, its opacity); only the product's
    soft edge needs the arithmetic (a few ms at 2000 px instead of ~45 for every pixel in floats),
    written into the one copy of the canvas."""
    if layer is None:
        return rgba
    box = bounding_box(layer)
    if box is None:
        return rgba
    top, bottom, left, right = box
    out = rgba.copy()
    part = out[top:bottom, left:right]  # a view: written in place
    shade = layer[top:bottom, left:right]
    a = part[..., 3].copy()  # contiguous: the tests below run ~5x faster than on every 4th byte
    shaded = shade > 0
    soft = ((a - np.uint8(1)) < np.uint8(254)) & shaded  # 0 < a < 255 (uint8 wraps)
    ys, xs = np.divmod(np.flatnonzero(soft), soft.shape[1])  # ~4x np.nonzero on a 2-D mask
    fa = a[ys, xs].astype(np.float32) / 255.0
    combined = fa + shade[ys, xs].astype(np.float32) / 255.0 * (1.0 - fa)
    edge_rgb = np.rint(part[ys, xs, :3] * (fa / combined)[:, None]).astype(np.uint8)
    bare = (a == 0) & shaded
    packed = part.view(np.uint32)[..., 0]  # one RGBA pixel per element (rows strided, pixels not)
    packed[bare] = shade[bare].astype(np.uint32) << ALPHA_SHIFT  # black at the shadow's opacity
    part[ys, xs, :3] = edge_rgb
    part[ys, xs, 3] = np.rint(combined * 255.0).astype(np.uint8)
    return out
