"""Smoothing and connected regions (engine/backdrop.py, engine/foreground.py, engine/opacity.py,
engine/confidence.py), by OpenCV: SIMD code that lets go of the GIL, with scipy.ndimage's
conventions kept so the numbers stay its own to float32's rounding (tests/test_filters.py,
tests/test_postprocess.py).

- ``box_mean``: the mean over square windows clipped at the frame's edges.
- ``gaussian``: scipy's ``gaussian_filter`` (kernel cut at 4 sigma, edges mirrored with the edge
  pixel repeated: scipy's ``reflect``, OpenCV's ``BORDER_REFLECT``).
- ``area_resize`` and ``bilinear_resize``: a float image brought to another size by the mean
  over each output pixel's footprint, or bilinearly (pixel centres aligned).
- ``label``: scipy's ``label`` (4- or 8-connected regions 1..count, 0 the rest); regions are the
  same pixels, though not numbered in the same order, which no caller relies on.
"""

from __future__ import annotations

import cv2
import numpy as np

TRUNCATE = 4.0  # sigmas the kernel reaches: scipy's default


def _inside(n: int, r: int) -> np.ndarray:
    """How many of a window of 2r+1 centred on each of n positions lie inside them (float32)."""
    index = np.arange(n)
    return (np.minimum(index + r + 1, n) - np.maximum(index - r, 0)).astype(np.float32)


def box_mean(x: np.ndarray, r: int, axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Mean over a (2r+1)^2 window, windows clipped at the borders (HxW or HxWxC, float32; with
    ``axes`` (1, 2), each image of a stack TxHxW[xC] on its own).

    OpenCV's box filter sums the window (zeros outside: what the clipped window holds), and the
    sum is divided by how much of the window lies inside. Its sums are as exact as float32 holds
    (within 1.1e-7 of float64 sums, tests/test_postprocess.py), so a faint pixel's mean does not
    depend on where its tile began (float32 cumulative sums moved such colours by up to 39
    levels), and it is SIMD code that lets go of the GIL: ~8x numpy's float64 cumulative sums on
    a 2 MP crop, one thread."""
    if axes == (1, 2):
        return np.stack([box_mean(image, r) for image in x])
    height, width = x.shape[:2]
    side = 2 * r + 1
    sums = cv2.boxFilter(
        np.ascontiguousarray(x, np.float32), cv2.CV_32F, (side, side), normalize=False, borderType=cv2.BORDER_CONSTANT
    )
    inside = _inside(height, r)[:, None] * _inside(width, r)[None, :]
    sums /= inside[..., None] if sums.ndim == 3 else inside
    return sums


def gaussian(values: np.ndarray, sigma: float) -> np.ndarray:
    """``values`` (HxW, or HxWxC channel by channel) smoothed by a Gaussian of ``sigma`` px;
    float32, a new array."""
    radius = int(TRUNCATE * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    source = np.ascontiguousarray(values, np.float32)
    return cv2.sepFilter2D(source, cv2.CV_32F, taps, taps, borderType=cv2.BORDER_REFLECT)


def area_resize(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``values`` (HxW or HxWxC float32) at ``size`` (width, height), each pixel the mean of the
    source pixels under it: for shrinking."""
    return cv2.resize(np.ascontiguousarray(values, np.float32), size, interpolation=cv2.INTER_AREA)


def bilinear_resize(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``values`` (HxW or HxWxC float32) at ``size`` (width, height), bilinear with pixel centres
    aligned: for enlarging something smooth."""
    return cv2.resize(np.ascontiguousarray(values, np.float32), size, interpolation=cv2.INTER_LINEAR)


def label(mask: np.ndarray, eight: bool = False) -> tuple[np.ndarray, int]:
    """(labels int32 HxW, count): the connected regions of a bool mask, 4-connected unless
    ``eight``."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8 if eight else 4, ltype=cv2.CV_32S)
    return labels, count - 1
