"""Opaque bodies, soft outlines, real holes kept, ghosts dropped (engine/opacity.py, ecom_product)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import REPO
from unet_matting.engine.opacity import drop_ghosts, levels, opaque_fraction, solid_body
from unet_matting.engine.postprocess import Profile, refine_alpha
from unet_matting.watcher.config import load_config


def disk(size: int, cy: float, cx: float, radius: float, edge: float = 2.0) -> np.ndarray:
    """A disk of alpha 1 with a linear soft edge ``edge`` px wide."""
    y, x = np.mgrid[:size, :size]
    d = np.hypot(y - cy, x - cx)
    return np.clip((radius - d) / edge + 0.5, 0, 1).astype(np.float32)


def test_unsure_interior_becomes_opaque_and_the_edge_stays_soft() -> None:
    """A body the model gives 0.6 inside is 1 there; the outline band keeps its soft values."""
    alpha = disk(100, 50, 50, 30) * 0.6 + disk(100, 50, 50, 30, edge=0.5) * 0.0
    out = solid_body(alpha, band_px=3)
    assert out[50, 50] == 1.0 and (out[alpha > 0.5] > 0.5).all()
    edge = (alpha > 0.05) & (alpha < 0.5)
    np.testing.assert_array_equal(out[edge], alpha[edge])
    assert (out[alpha == 0] == 0).all()


def test_real_holes_stay_and_unsure_enclosed_regions_fill() -> None:
    """An enclosed region at alpha ~0 (a handle's hole) stays clear; one at 0.3 (a pale panel) is filled."""
    alpha = disk(120, 60, 60, 50)
    alpha[40:60, 40:60] = 0.0  # a hole through the product
    alpha[70:90, 70:90] = 0.3  # the model unsure about a plain panel
    out = solid_body(alpha, band_px=2)
    assert (out[44:56, 44:56] == 0).all()
    assert (out[74:86, 74:86] == 1).all()


def test_thin_structure_keeps_the_models_alpha() -> None:
    """A strand narrower than the band (hair, wire) is not made solid."""
    alpha = np.zeros((40, 40), np.float32)
    alpha[5:35, 20] = 0.7
    np.testing.assert_array_equal(solid_body(alpha, band_px=2), alpha)


def test_ghosts_never_above_half_opacity_are_dropped() -> None:
    """Islands peaking at 0.4 vanish; the product and islands reaching 0.7 stay."""
    alpha = disk(100, 30, 30, 20)
    alpha += disk(100, 80, 80, 8) * 0.4  # faint look-alike
    alpha += disk(100, 80, 20, 6) * 0.7  # a second, real part
    out = drop_ghosts(alpha)
    assert out[80, 80] == 0 and out[30, 30] == 1 and out[80, 20] == pytest.approx(0.7)


def test_levels_stretch_and_clip() -> None:
    """low -> 0, high -> 1, linear between."""
    np.testing.assert_allclose(
        levels(np.array([0.0, 0.05, 0.475, 0.9, 1.0], np.float32), 0.05, 0.9), [0, 0, 0.5, 1, 1], atol=1e-6
    )


def test_ecom_product_publishes_an_opaque_body() -> None:
    """ecom_product: a body the model gives 0.97 with a large 0.55 patch comes out >= 90 % fully opaque."""
    cfg = load_config(REPO / "etc" / "unet-matting.yaml")
    alpha = disk(200, 100, 100, 70, edge=3.0) * 0.97
    alpha[60:140, 60:140] = 0.55  # where IS-Net is unsure: half see-through on a coloured page
    raw = np.rint(alpha * 255).astype(np.uint8)
    out = np.rint(refine_alpha(alpha, cfg.get_profile("ecom_product")) * 255).astype(np.uint8)
    assert opaque_fraction(raw) == 0.0 and opaque_fraction(out) >= 0.9
    assert (out[60:140, 60:140] == 255).all()
    kept = np.rint(refine_alpha(alpha, cfg.get_profile("ecom_translucent")) * 255).astype(np.uint8)
    assert kept.max() < 255, "the translucent profile keeps partial alpha"


@pytest.mark.parametrize("bad", [(0.9, 0.1), (0.1, 1.5)])
def test_levels_must_be_ordered_in_unit_range(bad: tuple[float, float]) -> None:
    """A profile with levels out of order or range is refused with the reason."""
    with pytest.raises(ValueError, match="levels must be two numbers"):
        Profile("x", levels=bad)


def test_solid_body_is_the_fill_holes_and_erosion_it_replaced() -> None:
    """The faster solid_body (one labelling, a separable minimum) gives exactly what
    binary_fill_holes + 8-connected erosion gave, on random soft mattes."""
    from scipy import ndimage

    from unet_matting.engine.opacity import BODY, solid_body

    def reference(alpha: np.ndarray, band: int, hole_alpha: float = 0.15) -> np.ndarray:
        body = alpha > BODY
        if not body.any():
            return alpha
        holes = ndimage.binary_fill_holes(body) & ~body
        if holes.any():
            labels, count = ndimage.label(holes)
            means = ndimage.mean(alpha, labels, index=np.arange(1, count + 1))
            body |= np.isin(labels, np.flatnonzero(means >= hole_alpha) + 1)
        eight = np.ones((3, 3), bool)
        core = ndimage.binary_erosion(body, structure=eight, iterations=band, border_value=1) if band else body
        return np.where(core, np.float32(1), alpha)

    for seed in range(40):
        rng = np.random.default_rng(seed)
        h, w = rng.integers(1, 80, 2)
        alpha = ndimage.gaussian_filter(rng.random((h, w)).astype(np.float32), rng.uniform(0, 3))
        alpha = np.clip((alpha - alpha.mean()) * rng.uniform(2, 20) + 0.5, 0, 1).astype(np.float32)
        for band in (0, 1, 3):
            np.testing.assert_array_equal(solid_body(alpha, band), reference(alpha, band))
