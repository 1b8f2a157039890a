"""engine/filters.py: OpenCV's filters keep scipy.ndimage's conventions, so the backdrop step's
numbers stay what scipy gave, to float32's rounding."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from unet_matting.engine.filters import area_resize, bilinear_resize, gaussian, label


@pytest.mark.parametrize("sigma", [0.7, 0.8, 1.0, 1.5, 2.5])
def test_gaussian_is_scipys_gaussian_filter(sigma: float) -> None:
    rng = np.random.default_rng(int(sigma * 10))
    for shape in ((300, 400), (7, 5), (1, 9)):  # a frame narrower than the kernel too
        values = (rng.random(shape) * 100).astype(np.float32)
        expected = ndimage.gaussian_filter(values.astype(np.float64), sigma)
        np.testing.assert_allclose(gaussian(values, sigma), expected, rtol=0, atol=5e-5)  # 100 x 5e-7
    mask = rng.random((40, 30)) > 0.5  # a bool mask is smoothed as 0 and 1
    expected = ndimage.gaussian_filter(mask.astype(np.float64), sigma)
    np.testing.assert_allclose(gaussian(mask, sigma), expected, rtol=0, atol=1e-6)


def test_a_channel_stack_is_smoothed_channel_by_channel() -> None:
    values = (np.random.default_rng(3).random((60, 50, 3)) * 100).astype(np.float32)
    stacked = gaussian(values, 3.0)
    for c in range(3):
        np.testing.assert_allclose(stacked[..., c], gaussian(values[..., c], 3.0), rtol=0, atol=5e-5)


def test_area_resize_is_the_mean_of_each_footprint() -> None:
    values = (np.random.default_rng(4).random((40, 60, 3)) * 100).astype(np.float32)
    blocks = values.reshape(10, 4, 15, 4, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(area_resize(values, (15, 10)), blocks, rtol=0, atol=1e-4)


def test_bilinear_resize_aligns_pixel_centres() -> None:
    """Doubled, the source's pixel centres fall between output pixels: each output pixel is
    3/4 of its own source pixel and 1/4 of the next one (edges repeated)."""
    values = (np.random.default_rng(6).random((10, 8)) * 100).astype(np.float32)
    out = bilinear_resize(values, (16, 20))
    padded = np.pad(values, 1, mode="edge")
    for y in range(20):
        for x in range(16):
            sy, sx = (y + 0.5) / 2 - 0.5 + 1, (x + 0.5) / 2 - 0.5 + 1
            y0, x0 = int(np.floor(sy)), int(np.floor(sx))
            wy, wx = sy - y0, sx - x0
            expected = (
                padded[y0, x0] * (1 - wy) * (1 - wx)
                + padded[y0, x0 + 1] * (1 - wy) * wx
                + padded[y0 + 1, x0] * wy * (1 - wx)
                + padded[y0 + 1, x0 + 1] * wy * wx
            )
            assert abs(out[y, x] - expected) < 1e-3


@pytest.mark.parametrize("eight", [False, True], ids=["4-connected", "8-connected"])
def test_label_finds_scipys_regions(eight: bool) -> None:
    rng = np.random.default_rng(5)
    structure = np.ones((3, 3), bool) if eight else None
    for density in (0.3, 0.5, 0.7):
        mask = rng.random((120, 90)) < density
        ours, count = label(mask, eight)
        theirs, expected = ndimage.label(mask, structure=structure)
        assert count == expected
        assert ours.dtype == np.int32 and ((ours > 0) == mask).all()
        pairs = np.unique(np.stack([ours[mask], theirs[mask]]), axis=1)
        assert pairs.shape[1] == count  # one to one: the same regions, whatever their numbers
    empty, none = label(np.zeros((4, 4), bool))
    assert none == 0 and not empty.any()
