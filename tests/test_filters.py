"""engine/filters.py: OpenCV's filters keep scipy.ndimage's conventions, so the backdrop step's
numbers stay what scipy gave, to float32's rounding."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from unet_matting.engine.filters import gaussian, label


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
