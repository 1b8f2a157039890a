"""Maximum and minimum over small squares (dilation and erosion of masks, the spread of labels):
shifted copies of the array, not scipy's filters, which are ~10x slower for a few-pixel square."""

from __future__ import annotations

import numpy as np


def square(values: np.ndarray, r: int, op: np.ufunc) -> np.ndarray:
    """``op`` (np.maximum or np.minimum) over the (2r+1)^2 square round each pixel of an HxW
    array, the square cut at the frame's edge: what scipy's maximum and minimum filters give in
    their default mode, and the minimum filter with ``cval=True`` outside. A new array.

    Separable: per axis, the array shifted by 1..r pixels each way and combined in place."""
    out = values
    for axis in (0, 1):
        source, out = out, out.copy()
        src, dst = np.moveaxis(source, axis, 0), np.moveaxis(out, axis, 0)
        for k in range(1, min(r, len(src) - 1) + 1):
            op(dst[k:], src[:-k], out=dst[k:])
            op(dst[:-k], src[k:], out=dst[:-k])
    return out


def grow(mask: np.ndarray, r: int) -> np.ndarray:
    """Dilation by a (2r+1)^2 square (r = 1: the 8-neighbourhood)."""
    return square(mask, r, np.maximum)


def shrink(mask: np.ndarray, r: int) -> np.ndarray:
    """Erosion by a (2r+1)^2 square; the frame's edge mirrors, so a body cut by it stays whole."""
    return square(mask, r, np.minimum)
