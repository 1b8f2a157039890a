"""Post-processing steps on small arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from unet_matting.engine.postprocess import Profile, compose_rgba, cutout, erode, feather, refine_alpha, threshold


def test_threshold_zeroes_only_below_cutoff() -> None:
    """Alpha under the cutoff becomes 0; the rest is untouched."""
    alpha = np.array([[0.05, 0.1, 0.5, 1.0]], np.float32)
    assert threshold(alpha, 0.1).flatten().tolist() == pytest.approx([0.0, 0.1, 0.5, 1.0])


def test_erosion_shrinks_a_square_by_half_the_kernel() -> None:
    """A 3x3 min-filter removes one pixel from each side of an opaque square."""
    alpha = np.zeros((9, 9), np.float32)
    alpha[2:7, 2:7] = 1
    eroded = erode(alpha, 3)
    assert eroded.sum() == 9 and (eroded[3:6, 3:6] == 1).all()
    assert erode(alpha, 5).sum() == 1


def test_feathering_preserves_mass_and_softens_edges() -> None:
    """A Gaussian feather keeps the total alpha and creates intermediate values at the edge."""
    alpha = np.zeros((32, 32), np.float32)
    alpha[8:24, 8:24] = 1
    soft = feather(alpha, 1.5)
    assert soft.sum() == pytest.approx(alpha.sum(), rel=1e-4)
    assert ((soft > 0.05) & (soft < 0.95)).sum() > 0
    assert soft[16, 16] == pytest.approx(1.0) and soft[7, 16] + soft[8, 16] == pytest.approx(1.0, abs=1e-5)


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


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha_threshold": 1.5}, "alpha_threshold"),
        ({"erosion_kernel": 4}, "erosion_kernel"),
        ({"edge_feathering": -1.0}, "edge_feathering"),
    ],
)
def test_profile_rejects_bad_values(kwargs: dict, message: str) -> None:
    """Profiles validate their knobs at construction."""
    with pytest.raises(ValueError, match=message):
        Profile("x", **kwargs)


def test_separable_filters_match_a_direct_reference() -> None:
    """Erosion and feathering equal a straightforward 2-D computation on random data."""
    rng = np.random.default_rng(3)
    alpha = rng.random((23, 31), dtype=np.float32)
    padded = np.pad(alpha, 1, mode="edge")
    direct = np.min([padded[dy : dy + 23, dx : dx + 31] for dy in range(3) for dx in range(3)], axis=0)
    np.testing.assert_array_equal(erode(alpha, 3), direct)
    from unet_matting.engine.postprocess import gaussian_taps

    taps = gaussian_taps(0.8)
    r = len(taps) // 2
    padded = np.pad(alpha, r, mode="edge")
    kernel = np.outer(taps, taps)
    direct = sum(
        kernel[dy, dx] * padded[dy : dy + 23, dx : dx + 31] for dy in range(2 * r + 1) for dx in range(2 * r + 1)
    )
    np.testing.assert_allclose(feather(alpha, 0.8), direct, atol=1e-6)


def test_feathering_by_bands_gives_the_bits_of_two_whole_frame_passes() -> None:
    """``feather`` works a band of rows at a time; its float32 result is bit for bit the one of
    filtering the whole matte down its columns and then along its rows (edges repeated), for
    heights the band does not divide, a single row or column, and a strided view."""
    from unet_matting.engine.postprocess import FEATHER_BAND, gaussian_taps

    def two_passes(alpha: np.ndarray, sigma: float) -> np.ndarray:
        taps = gaussian_taps(sigma)
        r = len(taps) // 2
        out = np.asarray(alpha, np.float32)
        for axis in (0, 1):
            pad = [(0, 0), (0, 0)]
            pad[axis] = (r, r)
            padded = np.pad(out, pad, mode="edge")
            n = out.shape[axis]
            shifted = [padded[t : t + n] if axis == 0 else padded[:, t : t + n] for t in range(2 * r + 1)]
            acc = shifted[0] * taps[0]
            for t in range(1, 2 * r + 1):
                acc = acc + shifted[t] * taps[t]
            out = acc
        return out

    rng = np.random.default_rng(5)
    for shape in ((2 * FEATHER_BAND + 7, 53), (1, 40), (40, 1), (FEATHER_BAND, 3)):
        alpha = rng.random(shape, dtype=np.float32)
        for sigma in (0.5, 1.0, 2.5):
            assert np.array_equal(feather(alpha, sigma), two_passes(alpha, sigma)), (shape, sigma)
    strided = rng.random((300, 200), dtype=np.float32)[::2, ::3]
    assert np.array_equal(feather(strided, 0.8), two_passes(strided, 0.8))


def test_a_matte_with_nothing_half_opaque_is_no_product() -> None:
    """cutout refuses a matte whose every pixel is at most half opaque (a blank photo): NoProduct."""
    from tests.conftest import REPO
    from unet_matting.engine.errors import NoProduct
    from unet_matting.watcher.config.profiles import parse_profiles
    from unet_matting.watcher.config.yaml_sections import read_yaml

    shipped = parse_profiles(read_yaml(REPO / "etc" / "profiles.yaml"), "profiles.yaml")
    rgb = np.full((40, 40, 3), 200, np.uint8)
    for name in ("default", "ecom_product", "ecom_translucent", "id_photo"):
        with pytest.raises(NoProduct, match="no product found in the photo"):
            cutout(np.full((40, 40), 0.45, np.float32), rgb, shipped[name])
    alpha = np.zeros((40, 40), np.float32)
    alpha[10:20, 10:20] = 0.9
    assert cutout(alpha, rgb, Profile("default"))[..., 3].max() == 230


def test_flatten_on_a_colour_gives_the_float_formula_for_every_alpha_and_value() -> None:
    """The table lookup of canvas.flatten is exact: the same pixels as the arithmetic it replaced."""
    from unet_matting.engine.canvas import flatten

    a, v = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    rgba = np.stack([v, np.flip(v, 1), v, a], -1).astype(np.uint8)
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    for colour in ((255, 255, 255), (0, 0, 0), (58, 120, 216)):
        expected = np.rint(rgba[..., :3] * alpha + np.asarray(colour, np.float32) * (1 - alpha)).astype(np.uint8)
        assert np.array_equal(flatten(rgba, colour), expected)


def test_box_mean_is_the_clipped_window_mean_to_float32_rounding() -> None:
    """engine/filters.py's box mean (OpenCV's box filter over zeros, divided by the window's
    share inside) is the mean of each window clipped at the borders, as float64 sums give it,
    to float32's rounding; windows wider than the image included."""
    from unet_matting.engine.filters import box_mean

    def clipped(x: np.ndarray, r: int, axis: int) -> np.ndarray:
        n = x.shape[axis]
        c = np.cumsum(x, axis=axis, dtype=np.float64)
        c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
        hi, lo = np.minimum(np.arange(n) + r + 1, n), np.maximum(np.arange(n) - r, 0)
        shape = [1] * x.ndim
        shape[axis] = n
        return (np.take(c, hi, axis=axis) - np.take(c, lo, axis=axis)) / (hi - lo).reshape(shape)

    for seed in range(20):
        rng = np.random.default_rng(seed)
        shape = (*(int(v) for v in rng.integers(1, 120, 2)), *((3,) if seed % 2 else ()))
        x = rng.random(shape, dtype=np.float32)
        for r in (1, 6, 90):
            expected = clipped(clipped(x, r, 0), r, 1)
            np.testing.assert_allclose(box_mean(x, r), expected, rtol=2.5e-7, atol=0)
        stack = np.stack([x, x[::-1].copy()])
        np.testing.assert_array_equal(box_mean(stack, 6, axes=(1, 2))[1], box_mean(x[::-1].copy(), 6))


def test_decontaminated_colours_do_not_depend_on_the_tile_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fine pass runs per tile of the soft band; its box sums are exact to float32's
    rounding, so a faint pixel's colour is the same whichever tile it falls in (float32
    cumulative sums moved it by up to 39 levels between 64 and 128 px tiles, where the weights
    are almost zero)."""
    import functools

    from unet_matting.engine import foreground

    rng = np.random.default_rng(3)
    size = 700
    yy, xx = np.mgrid[0:size, 0:size]
    alpha = np.clip((230 - np.hypot(yy - 350, xx - 350)) / 12, 0, 1).astype(np.float32)  # a disc, soft edge
    alpha[(np.abs(xx - 350) < 2) & (yy < 130)] = 0.04  # a faint strand
    rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    tiles = foreground._band_tiles
    results = []
    for tile in (40, 64, 128, 300):
        monkeypatch.setattr(foreground, "_band_tiles", functools.partial(tiles, size=tile))
        results.append(foreground.estimate_foreground(rgb, alpha))
    soft = (alpha > 0) & (alpha < 1)
    assert not np.array_equal(results[0][soft], rgb[soft])  # the band's colours were estimated
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
