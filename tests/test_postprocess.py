"""Post-processing steps on small arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.postprocess import Profile, compose_rgba, cutout, erode, feather, refine_alpha, threshold


def test_threshold_zeroes_only_below_cutoff() -> None:
    """Alpha under the cutoff becomes 0; the rest is untouched."""
    alpha = torch.tensor([[[[0.05, 0.1, 0.5, 1.0]]]])
    assert threshold(alpha, 0.1).flatten().tolist() == pytest.approx([0.0, 0.1, 0.5, 1.0])


def test_erosion_shrinks_a_square_by_half_the_kernel() -> None:
    """A 3x3 min-filter removes one pixel from each side of an opaque square."""
    alpha = torch.zeros(1, 1, 9, 9)
    alpha[..., 2:7, 2:7] = 1
    eroded = erode(alpha, 3)
    assert eroded.sum() == 9 and eroded[0, 0, 3:6, 3:6].eq(1).all()


def test_feathering_preserves_mass_and_softens_edges() -> None:
    """A Gaussian feather keeps the total alpha and creates intermediate values at the edge."""
    alpha = torch.zeros(1, 1, 32, 32)
    alpha[..., 8:24, 8:24] = 1
    soft = feather(alpha, 1.5)
    assert soft.sum().item() == pytest.approx(alpha.sum().item(), rel=1e-4)
    assert ((soft > 0.05) & (soft < 0.95)).sum() > 0


def test_refine_alpha_default_profile_is_identity() -> None:
    """The default profile changes nothing."""
    alpha = np.random.default_rng(0).random((20, 30), dtype=np.float32)
    np.testing.assert_allclose(refine_alpha(alpha, Profile("default")), alpha, atol=1e-6)


def test_compose_zeroes_rgb_of_transparent_pixels() -> None:
    """Fully transparent pixels carry RGB 0: no leak of what was behind the product."""
    rgb = np.full((2, 2, 3), 200, np.uint8)
    alpha = np.array([[0.0, 0.001], [0.5, 1.0]], np.float32)
    rgba = compose_rgba(rgb, alpha)
    assert rgba[0, 0].tolist() == [0, 0, 0, 0] and rgba[0, 1].tolist() == [0, 0, 0, 0]
    assert rgba[1, 0].tolist() == [200, 200, 200, 128] and rgba[1, 1, 3] == 255


def test_cutout_respects_the_inputs_own_transparency() -> None:
    """A pixel transparent in the upload stays transparent, whatever the network says."""
    rgb = np.full((4, 4, 3), 90, np.uint8)
    predicted = np.ones((4, 4), np.float32)
    own = np.full((4, 4), 255, np.uint8)
    own[:, :2] = 0
    rgba = cutout(predicted, rgb, Profile("default"), own)
    assert rgba[:, :2, 3].max() == 0 and rgba[:, 2:, 3].min() == 255


@pytest.mark.parametrize("kwargs, message", [
    ({"alpha_threshold": 1.5}, "alpha_threshold"),
    ({"erosion_kernel": 4}, "erosion_kernel"),
    ({"edge_feathering": -1.0}, "edge_feathering"),
])
def test_profile_rejects_bad_values(kwargs: dict, message: str) -> None:
    """Profiles validate their knobs at construction."""
    with pytest.raises(ValueError, match=message):
        Profile("x", **kwargs)
