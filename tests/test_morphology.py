"""engine/morphology.py: the square filters are scipy's maximum and minimum filters, faster."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from unet_matting.engine.morphology import grow, shrink, square


@pytest.mark.parametrize("shape", [(60, 80), (1, 9), (2, 2), (9, 1), (7, 3)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_square_filters_are_scipys_with_the_square_cut_at_the_frame(shape: tuple[int, int]) -> None:
    """Also where the square is wider than the frame, and for labels as for masks."""
    rng = np.random.default_rng(sum(shape))
    for r in range(6):
        size = 2 * r + 1
        mask = rng.random(shape) > 0.6
        labels = rng.integers(0, 40, shape)
        assert np.array_equal(grow(mask, r), ndimage.maximum_filter(mask, size=size))
        assert np.array_equal(shrink(mask, r), ndimage.minimum_filter(mask, size=size))
        assert np.array_equal(shrink(mask, r), ndimage.minimum_filter(mask, size=size, mode="constant", cval=True))
        assert np.array_equal(square(labels, r, np.maximum), ndimage.maximum_filter(labels, size=size))
        assert np.array_equal(grow(mask, 1), ndimage.binary_dilation(mask, structure=np.ones((3, 3), bool)))


def test_the_input_is_left_as_it_was() -> None:
    mask = np.zeros((5, 5), bool)
    mask[2, 2] = True
    assert grow(mask, 1).sum() == 9 and mask.sum() == 1
