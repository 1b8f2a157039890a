"""Smoothing and connected regions (engine/backdrop.py, engine/opacity.py), by OpenCV: SIMD code
that lets go of the GIL, with scipy.ndimage's conventions kept so the numbers stay its own to
float32's rounding (tests/test_filters.py).

- ``gaussian``: scipy's ``gaussian_filter`` (kernel cut at 4 sigma, edges mirrored with the edge
  pixel repeated: scipy's ``reflect``, OpenCV's ``BORDER_REFLECT``).
- ``label``: scipy's ``label`` (4- or 8-connected regions 1..count, 0 the rest); regions are the
  same pixels, though not numbered in the same order, which no caller relies on.
"""

from __future__ import annotations

import cv2
import numpy as np

TRUNCATE = 4.0  # sigmas the kernel reaches: scipy's default


def gaussian(values: np.ndarray, sigma: float) -> np.ndarray:
    """``values`` (HxW) smoothed by a Gaussian of ``sigma`` px; float32, a new array."""
    radius = int(TRUNCATE * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    source = np.ascontiguousarray(values, np.float32)
    return cv2.sepFilter2D(source, cv2.CV_32F, taps, taps, borderType=cv2.BORDER_REFLECT)


def label(mask: np.ndarray, eight: bool = False) -> tuple[np.ndarray, int]:
    """(labels int32 HxW, count): the connected regions of a bool mask, 4-connected unless
    ``eight``."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8 if eight else 4, ltype=cv2.CV_32S)
    return labels, count - 1
