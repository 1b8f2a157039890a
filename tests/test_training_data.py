"""The training-sample generator (training/data.py), on small in-memory sources.

Needs none of the Debian packages the real training draws from. Each sample is drawn twice from
the same seed, once with a red and once with a blue cut-out: the random draws do not depend on
pixel values, so the pixels that differ are exactly where a cut-out shows, whatever the backdrop.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from training.data import SampleMaker


def cutout(colour: tuple[int, int, int]) -> Image.Image:
    im = Image.new("RGBA", (120, 160), (0, 0, 0, 0))
    ImageDraw.Draw(im).rounded_rectangle((10, 10, 110, 150), radius=20, fill=(*colour, 255))
    return im


TEXTURE = Image.fromarray(np.random.default_rng(0).integers(90, 140, (160, 160, 3), dtype=np.uint8))
RED, BLUE = cutout((230, 20, 20)), cutout((20, 20, 230))


def makers(scenes: float) -> tuple[SampleMaker, SampleMaker]:
    return tuple(SampleMaker([c], [TEXTURE], 96, scenes, props=[c], textures=[TEXTURE]) for c in (RED, BLUE))


def cutout_pixels_off_the_matte(seed: int, scenes: float) -> tuple[int, np.ndarray]:
    """Pixels showing a cut-out 2 px or more from the matte (past edge blur and JPEG bleed)."""
    (red, alpha), (blue, alpha2) = (m.make(seed) for m in makers(scenes))
    assert np.array_equal(alpha, alpha2)
    shows = np.abs(red.astype(int) - blue.astype(int)).sum(2) > 90
    covered = Image.fromarray((alpha > 0.01).astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(5))
    return int((shows & (np.asarray(covered) == 0)).sum()), alpha


def test_samples_are_deterministic_per_seed() -> None:
    maker = makers(0.5)[0]
    for seed in (0, 7):
        (rgb1, a1), (rgb2, a2) = maker.make(seed), maker.make(seed)
        assert rgb1.shape == (96, 96, 3) and rgb1.dtype == np.uint8
        assert a1.shape == (96, 96) and a1.dtype == np.float32
        assert np.array_equal(rgb1, rgb2) and np.array_equal(a1, a2)
        assert a1.min() >= 0.0 and a1.max() <= 1.0
    assert not np.array_equal(maker.make(0)[0], maker.make(1)[0])


def test_plain_composites_put_every_object_in_the_matte() -> None:
    for seed in range(30):
        off, alpha = cutout_pixels_off_the_matte(seed, scenes=0.0)
        assert off <= 3, f"seed {seed}: {off} cut-out pixels outside the matte"  # JPEG blocks reach further
        assert alpha.max() > 0.3


def test_scenes_keep_distractors_out_of_the_matte() -> None:
    off = [cutout_pixels_off_the_matte(seed, scenes=1.0) for seed in range(30)]
    assert all(alpha.max() > 0.3 for _, alpha in off)  # a product in every scene (glass: opacity >= 0.4)
    assert sum(n > 20 for n, _ in off) >= 10  # cut-outs in the picture but not in the matte: distractors
