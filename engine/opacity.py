"""A publishable matte: an opaque body, a soft band only near the outline, no faint ghosts.

Matting networks are unsure inside large plain areas (a toilet's side panel, a white box face)
and give them 30-80 % alpha: on a coloured page the product is see-through. And they leave
faint islands where something else in the photo looked a little like a product (sunglasses
beside a laptop). These pure functions on HxW float mattes in [0, 1] fix both; a translucent
product (glass) turns them off in its profile.
"""

from __future__ import annotations

import numpy as np

from unet_matting.engine.filters import label
from unet_matting.engine.morphology import grow, shrink
from unet_matting.engine.regions import means, members

BODY = 0.5  # alpha above which a pixel belongs to the product's body


def levels(alpha: np.ndarray, low: float, high: float) -> np.ndarray:
    """Stretch ``[low, high]`` to ``[0, 1]``: haze under ``low`` goes, alpha over ``high`` is solid."""
    return np.clip((alpha - low) / (high - low), 0.0, 1.0).astype(np.float32)


def drop_ghosts(alpha: np.ndarray, floor: float = 0.1, faint_mean: float = 0.3) -> np.ndarray:
    """Zero the faint islands: 8-connected regions above ``floor`` apart from the main body that
    never reach ``BODY`` or are mostly faint (mean alpha under ``faint_mean``).

    The island with the most alpha is the product and always stays; a second real part (the
    other shoe of a pair) is solid and stays too.
    """
    labels, count = label(alpha > floor, eight=True)
    if count <= 1:
        return alpha
    # per-island figures by bincounts over the islands' pixels (ndimage.maximum sorts them all)
    inside = labels > 0
    which, values = labels[inside], alpha[inside]
    mass = np.bincount(which, values, minlength=count + 1)[1:]
    mean_alpha = mass / np.bincount(which, minlength=count + 1)[1:]
    reaches = np.zeros(count + 1, bool)  # some pixel of the island is body
    reaches[which[values > BODY]] = True
    faint = ~reaches[1:] | (mean_alpha < faint_mean)
    faint[np.argmax(mass)] = False
    if faint.any():
        ghosts = members(labels, count, np.flatnonzero(faint) + 1)
        ghosts = grow(ghosts, 1) & ~inside | ghosts  # and their haze rim
        alpha = np.where(ghosts, np.float32(0), alpha)
    return alpha


def solid_body(alpha: np.ndarray, band_px: int, hole_alpha: float = 0.15) -> np.ndarray:
    """Alpha 1 wherever the body is more than ``band_px`` from its outline.

    Enclosed regions under ``BODY`` with a mean alpha of at least ``hole_alpha`` are unsure
    product, not holes, and join the body; real holes (a mug's handle, mean alpha ~0) stay
    transparent. Soft edges, hair and thin parts (narrower than the band) keep the model's alpha.
    """
    body = alpha > BODY
    if not body.any():
        return alpha
    # the enclosed regions: parts of the background (4-connected, as binary_fill_holes floods it)
    # that do not reach the frame; labelling once is ~3x faster than fill_holes and labelling again
    labels, count = label(~body)
    if count:
        enclosed = np.ones(count + 1, bool)
        for strip in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
            enclosed[strip] = False
        enclosed[0] = False
        if enclosed.any():  # mean alpha per enclosed region, over its pixels alone
            held = enclosed[labels]
            unsure = enclosed[1:] & (means(alpha[held], labels[held], count) >= hole_alpha)
            body |= members(labels, count, np.flatnonzero(unsure) + 1)
    # erosion by the 8-neighbourhood band_px times is a (2 band_px + 1) square's minimum
    core = shrink(body, band_px) if band_px else body
    return np.where(core, np.float32(1), alpha)


def opaque_fraction(alpha8: np.ndarray) -> float:
    """Share of the visible product (alpha > 127 of 255) that is fully opaque (255)."""
    visible = alpha8 > 127
    return float((alpha8[visible] == 255).mean()) if visible.any() else 1.0
