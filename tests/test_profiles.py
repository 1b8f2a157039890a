"""Profile steps beyond the matte: decontamination, canvas, extra outputs, colour, selection."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageCms

from tests.conftest import REPO, config_dict
from unet_matting.engine.canvas import flatten, layout
from unet_matting.engine.foreground import estimate_foreground
from unet_matting.engine.postprocess import Profile, cutout
from unet_matting.watcher.config import load_config
from unet_matting.watcher.errors import ConfigError
from unet_matting.watcher.processing.imageio import decode

ADOBE_RGB = Path("/usr/share/color/icc/ghostscript/a98.icc")
GREY, GREEN = np.array([128, 128, 128], np.float32), np.array([20, 200, 40], np.float32)


def grey_disc_on_green(n: int = 600, edge: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:n, 0:n]
    alpha = np.clip((n * 0.3 - np.hypot(xx - n / 2, yy - n / 2)) / edge + 0.5, 0, 1).astype(np.float32)
    rgb = (alpha[..., None] * GREY + (1 - alpha[..., None]) * GREEN).round().astype(np.uint8)
    return rgb, alpha


def green_cast(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    pixels = rgb[mask].astype(int)
    return pixels[:, 1] - (pixels[:, 0] + pixels[:, 2]) // 2


def test_decontamination_removes_the_green_fringe() -> None:
    """Grey disc on green with a soft edge: after decontamination no pixel with alpha > 0.02 is
    more than 6 levels greener than grey (before: up to ~170)."""
    rgb, alpha = grey_disc_on_green()
    edge = alpha > 0.02
    assert green_cast(rgb, edge).max() > 150
    cleaned = estimate_foreground(rgb, alpha)
    assert green_cast(cleaned, edge).max() <= 6
    np.testing.assert_array_equal(cleaned[alpha == 1], rgb[alpha == 1])


def test_decontamination_without_soft_edge_is_a_no_op() -> None:
    """A binary matte has nothing to estimate."""
    rgb = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    alpha = np.zeros((40, 50), np.float32)
    alpha[10:30, 10:40] = 1
    assert estimate_foreground(rgb, alpha) is rgb


def rgba_with_box(h: int, w: int, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[top:bottom, left:right] = (200, 100, 50, 255)
    return rgba


def test_trim_pad_square_center() -> None:
    """A 20x40 product, 10 % padding (4 px) on a square canvas, centred: 48x48 canvas."""
    out = layout(rgba_with_box(100, 100, 30, 50, 10, 50), Profile("p", trim=True, padding=10, aspect=(1, 1)))
    assert out.shape == (48, 48, 4)
    rows, cols = np.nonzero(out[..., 3])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (14, 33, 4, 43)


def test_bottom_alignment_and_pixel_padding() -> None:
    """A tall 4:5 canvas with the product on the bottom padding line."""
    out = layout(
        rgba_with_box(50, 50, 10, 20, 5, 45),
        Profile("p", trim=True, padding=2, padding_unit="px", aspect=(4, 5), align="bottom"),
    )
    assert out.shape == (55, 44, 4)
    rows = np.nonzero(out[..., 3])[0]
    assert rows.max() == 55 - 2 - 1 and rows.min() == 55 - 2 - 10


def test_max_size_only_downscales_and_empty_matte_is_kept() -> None:
    """max_size caps the long side; an all-transparent result is not trimmed to nothing."""
    big = layout(rgba_with_box(300, 200, 0, 300, 0, 200), Profile("p", max_size=150))
    assert big.shape == (150, 100, 4)
    small = layout(rgba_with_box(30, 20, 0, 30, 0, 20), Profile("p", max_size=150))
    assert small.shape == (30, 20, 4)
    empty = layout(np.zeros((10, 12, 4), np.uint8), Profile("p", trim=True))
    assert empty.shape == (10, 12, 4)


def test_flatten_on_white() -> None:
    """Half-transparent red on white is pink; transparent is white."""
    rgba = np.array([[[255, 0, 0, 128], [0, 0, 0, 0]]], np.uint8)
    assert flatten(rgba, (255, 255, 255)).tolist() == [[[255, 127, 127], [255, 255, 255]]]


def test_clear_transparent_can_be_turned_off() -> None:
    """With clear_transparent false the RGB under alpha 0 is kept (for debugging mattes)."""
    rgb = np.full((4, 4, 3), 77, np.uint8)
    alpha = np.zeros((4, 4), np.float32)
    alpha[0, 0] = 1.0  # a product pixel, so the matte is not empty
    kept = cutout(alpha, rgb, Profile("x", clear_transparent=False))
    assert kept[..., :3].min() == 77
    cleared = cutout(alpha, rgb, Profile("x"))
    assert cleared[1:, 1:, :3].max() == 0 and cleared[0, 0, :3].tolist() == [77, 77, 77]


@pytest.mark.skipif(not ADOBE_RGB.exists(), reason="libgs-common (Adobe RGB profile) not installed")
def test_adobe_rgb_is_converted_to_srgb() -> None:
    """An Adobe RGB photo is converted to sRGB (as LittleCMS does), not shown with its raw numbers."""
    icc = ADOBE_RGB.read_bytes()
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (100, 150, 200)).save(buffer, "PNG", icc_profile=icc)
    got = decode(buffer.getvalue(), 10**6).rgb[0, 0].astype(int)
    expected = ImageCms.profileToProfile(
        Image.new("RGB", (1, 1), (100, 150, 200)),
        ImageCms.ImageCmsProfile(io.BytesIO(icc)),
        ImageCms.createProfile("sRGB"),
    )
    assert abs(got - np.array(expected.getpixel((0, 0)))).max() <= 1
    assert abs(got - np.array([100, 150, 200])).max() > 20


def test_shipped_profiles_and_folder_mapping() -> None:
    """The shipped config maps incoming/id_photo/ to id_photo; other uploads get ecom_product."""
    cfg = load_config(REPO / "etc/unet-matting.yaml")
    assert cfg.profile_for(Path("shoes/a.jpg")).name == "ecom_product"
    assert cfg.profile_for(Path("a.jpg")).name == "ecom_product"
    assert cfg.profile_for(Path("id_photo/x/p.jpg")).name == "id_photo"
    ecom = cfg.get_profile("ecom_product")
    assert ecom.decontaminate and ecom.trim and ecom.aspect == (1, 1) and ecom.flat_background == (255, 255, 255)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("aspect", "square", "aspect must look like 1:1"),
        ("flat_background", "white", "flat_background must be a colour like '#ffffff'"),
        ("align", "top", "align must be one of"),
        ("sharpen", True, r"profiles\.ecom_product\.sharpen: unknown key"),
    ],
)
def test_bad_profile_keys_are_errors(tmp_path: Path, tiny_model: Path, key: str, value: object, message: str) -> None:
    """Invalid or unknown profile keys stop the config from loading, naming the key."""
    (tmp_path / "profiles.yaml").write_text(yaml.safe_dump({"ecom_product": {key: value}}))
    data = config_dict(tmp_path, tiny_model)
    data.update(profiles_file=str(tmp_path / "profiles.yaml"), profile="ecom_product")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "c.yaml")


def test_folder_mapping_to_unknown_profile_is_an_error(tmp_path: Path, tiny_model: Path) -> None:
    """profiles_by_folder naming a missing profile is a config error naming the folder."""
    data = config_dict(tmp_path, tiny_model)
    data["profiles_by_folder"] = {"passports": "passport"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"profiles_by_folder\.passports: unknown profile 'passport'"):
        load_config(tmp_path / "c.yaml")


def test_shrinking_first_matches_shrinking_last() -> None:
    """cutout shrinks to max_size before refining; the result matches refining at full size and
    shrinking afterwards within a few levels of alpha."""
    rgb, alpha = grey_disc_on_green(1200, edge=6)
    profile = Profile("p", alpha_threshold=0.1, trim=True, padding=5, aspect=(1, 1), decontaminate=True)
    full = cutout(alpha, rgb, profile)
    small = cutout(alpha, rgb, dataclasses.replace(profile, max_size=300))
    assert small.shape == (300, 300, 4) and full.shape[0] > 600
    reference = np.asarray(Image.fromarray(full, "RGBA").resize((300, 300), Image.LANCZOS))
    assert np.abs(small[..., 3].astype(int) - reference[..., 3]).mean() < 2.0
    visible = small[..., 3] > 128  # a 1.4 px edge after shrinking: decontamination has less to work with
    assert green_cast(small[..., :3], visible).max() <= 12


def test_thin_faint_strands_lose_the_backdrop_colour() -> None:
    """Issue 21 item 5: strands over grass. Cubed alpha weights leave far less green in them than
    the paper's linear ones (bench/foreground.py measures it on 12 cases)."""
    from bench.foreground import errors, hair_case, linear_weights

    fg, bg, alpha, name = hair_case(2)  # grey fur over green
    assert name == "green"
    image = np.rint(alpha[..., None] * fg + (1 - alpha[..., None]) * bg).astype(np.uint8)
    now = estimate_foreground(image, alpha)
    before, after = errors(linear_weights(image, alpha), fg, bg, alpha), errors(now, fg, bg, alpha)
    assert after[2] < before[2] / 2 and after[1] < before[1] / 2  # tint towards the grass; faint strands
    np.testing.assert_array_equal(now[alpha == 1], image[alpha == 1])
