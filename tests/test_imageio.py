"""Decoding every kind of upload, good and bad; bad ones fail with a clear reason."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.images import (
    animated_bytes,
    cmyk_jpeg_bytes,
    exif_rotated_jpeg,
    jpeg_bytes,
    palette_png_bytes,
    png16_rgb_bytes,
    png_bomb_bytes,
    product_rgb,
)
from unet_matting.engine.errors import ImageError, ImageIncomplete, ImageTooLarge
from unet_matting.watcher.processing.imageio import decode, encode_png

LIMIT = 50_000_000


@pytest.mark.parametrize("cut", [0.5, 0.99])
def test_truncated_jpeg_is_incomplete(cut: float) -> None:
    """A JPEG cut at 50 % or 99 % (Pillow's verify() passes both) fails the full decode."""
    data = jpeg_bytes()
    with pytest.raises(ImageIncomplete, match="truncated|cannot decode"):
        decode(data[: int(len(data) * cut)], LIMIT)


@pytest.mark.parametrize(
    "options",
    [{"subsampling": 2}, {"subsampling": 1}, {"subsampling": 0}, {"progressive": True}],
    ids=["4:2:0", "4:2:2", "4:4:4", "progressive"],
)
def test_a_plain_jpeg_is_decoded_by_opencv_to_pillows_pixels(options: dict) -> None:
    """A plain JPEG (RGB, upright, no ICC profile) takes OpenCV's decoder: the same pixels as
    Pillow's, at an odd size too."""
    from unet_matting.watcher.processing import imageio

    rng = np.random.default_rng(4)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (61, 83, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90, **options)
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as im:
        assert imageio._plain_jpeg_pixels(im, data) is not None  # the OpenCV path
        expected = np.asarray(im.convert("RGB"))
    image = decode(data, LIMIT)
    assert image.format == "JPEG" and image.source_mode == "RGB" and image.alpha is None
    np.testing.assert_array_equal(image.rgb, expected)


def test_only_a_plain_complete_jpeg_takes_opencvs_decoder() -> None:
    """Pillow keeps what OpenCV's decoder would get wrong or could not prove complete: bytes after
    the end-of-image marker (or an upload cut short), an EXIF turn, an ICC profile, greyscale."""
    from unet_matting.watcher.processing import imageio

    data = jpeg_bytes()
    buffer = io.BytesIO()
    Image.fromarray(product_rgb()).save(buffer, "JPEG", icc_profile=imageio.srgb_icc())
    grey = io.BytesIO()
    Image.fromarray(product_rgb()).convert("L").save(grey, "JPEG")
    for other in (data + b"trailer", data[:-1], exif_rotated_jpeg(40, 20, 6), buffer.getvalue(), grey.getvalue()):
        with Image.open(io.BytesIO(other)) as im:
            assert imageio._plain_jpeg_pixels(im, other) is None


def test_empty_and_non_image_are_refused_at_once() -> None:
    """An empty file or one no image can start with is refused (no waiting for decode_grace_s)."""
    for data, reason in [
        (b"", "empty file"),
        (b"%PDF-1.7 not an image at all", "starts with 25 50 44 46"),
        (b"hello, this is text named .jpg\n", "not a JPEG, PNG, WebP, TIFF, HEIC or AVIF file"),
        (b"\0\0\0\x18ftypisom\0\0\0\0", "starts with 00 00 00 18 66 74 79 70 69 73 6f 6d"),  # an MP4 video
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", "not a JPEG"),
    ]:
        with pytest.raises(ImageError, match=reason) as info:
            decode(data, LIMIT)
        assert not isinstance(info.value, ImageIncomplete), data


@pytest.mark.parametrize(
    "data",
    [
        b"\xff",
        b"\xff\xd8\xff\xe0\x00",
        b"\x89PN",
        b"RIFF\x00\x00",
        b"RIFF\x00\x00\x00\x00WE",
        b"II*",
        b"\0\0\0\x1cftyph",
        b"\0\0\0\x20ftypavif",
    ],
)
def test_a_truncated_start_of_an_image_waits(data: bytes) -> None:
    """The first bytes of a JPEG, PNG, WebP or TIFF may be an upload in progress: incomplete."""
    with pytest.raises(ImageIncomplete):
        decode(data, LIMIT)


def test_decompression_bomb_rejected_from_header() -> None:
    """A 10-gigapixel header is refused before any pixel is decoded."""
    with pytest.raises(ImageTooLarge, match="100000x100000 .* exceeds engine.max_input_pixels"):
        decode(png_bomb_bytes(), LIMIT)


def test_pixel_limit_is_exact() -> None:
    """An image of exactly the limit passes; one pixel more does not."""
    data = jpeg_bytes(product_rgb(100, 50))
    assert decode(data, 5000).size == (100, 50)
    with pytest.raises(ImageTooLarge):
        decode(data, 4999)


def test_exif_orientation_is_applied() -> None:
    """Orientation 6 turns a stored 200x100 image into 100x200, red half on top."""
    image = decode(exif_rotated_jpeg(200, 100, 6), LIMIT)
    assert image.size == (100, 200)
    assert image.rgb[10, 50, 0] > 200 and image.rgb[190, 50, 0] < 60


def test_cmyk_is_converted_to_rgb() -> None:
    """A CMYK JPEG becomes RGB with the right colour (pure red stays red)."""
    image = decode(cmyk_jpeg_bytes(), LIMIT)
    assert image.source_mode == "CMYK" and image.rgb.shape == (48, 64, 3)
    r, g, b = image.rgb[24, 32].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_16_bit_rgb_scales_not_clips() -> None:
    """16-bit samples map to 8 bits by scale: 0x8000 becomes ~128, not 255."""
    values = np.full((8, 8, 3), 0x8000, np.uint16)
    values[..., 2] = 0xFFFF
    image = decode(png16_rgb_bytes(values), LIMIT)
    assert abs(int(image.rgb[0, 0, 0]) - 128) <= 1 and image.rgb[0, 0, 2] == 255


def test_16_bit_grey_scales_not_clips() -> None:
    """A 16-bit greyscale PNG (mode I;16) keeps its tones."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 4), 0x4000, np.uint16)).save(buffer, "PNG")
    image = decode(buffer.getvalue(), LIMIT)
    assert abs(int(image.rgb[0, 0, 0]) - 64) <= 1


def test_palette_png_with_transparency_keeps_its_alpha() -> None:
    """A palette PNG's transparent index becomes the input alpha; no alpha without one."""
    image = decode(palette_png_bytes(True), LIMIT)
    assert image.alpha is not None and image.alpha[:, :10].max() == 0 and image.alpha[:, 10:].min() == 255
    assert decode(palette_png_bytes(False), LIMIT).alpha is None


@pytest.mark.parametrize("fmt, message", [("GIF", "unsupported format GIF"), ("WEBP", "3 frames"), ("PNG", "3 frames")])
def test_animated_and_unsupported_are_rejected(fmt: str, message: str) -> None:
    """Animated WebP/APNG (and GIF, not an accepted format) are refused with the reason."""
    with pytest.raises(ImageError, match=message) as info:
        decode(animated_bytes(fmt), LIMIT)
    assert not isinstance(info.value, ImageIncomplete)


def test_tiff_and_webp_decode() -> None:
    """TIFF and WebP stills are accepted."""
    for fmt in ("TIFF", "WEBP"):
        buffer = io.BytesIO()
        Image.fromarray(product_rgb(50, 40)).save(buffer, fmt)
        assert decode(buffer.getvalue(), LIMIT).size == (50, 40)


def test_png_round_trip() -> None:
    """encode_png writes RGBA that decodes to the same pixels."""
    rgba = np.random.default_rng(1).integers(0, 255, (7, 9, 4), dtype=np.uint8)
    back = np.asarray(Image.open(io.BytesIO(encode_png(rgba, 1))))
    np.testing.assert_array_equal(back, rgba)


@pytest.mark.parametrize("shape", [(1, 1, 4), (37, 53, 4), (40, 31, 3), (29, 64), (300, 200, 4)])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_png_is_a_standard_png_with_the_same_pixels_as_pillows(shape: tuple[int, ...], level: int) -> None:
    """The libdeflate encoder writes a PNG every decoder reads (Pillow's verify checks the chunk
    CRCs), with exactly the pixels Pillow's own encoder would store, greyscale, RGB and RGBA."""
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    pixels[: shape[0] // 2] //= 16  # some structure: runs that compress
    data = encode_png(pixels, level)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    Image.open(io.BytesIO(data)).verify()
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == ("L" if len(shape) == 2 else {3: "RGB", 4: "RGBA"}[shape[2]])
        assert im.size == (shape[1], shape[0])
        np.testing.assert_array_equal(np.asarray(im), pixels)
    pillow = io.BytesIO()
    Image.fromarray(pixels).save(pillow, "PNG", compress_level=level)
    np.testing.assert_array_equal(np.asarray(Image.open(pillow)), pixels)


def test_png_refuses_what_it_cannot_write() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        encode_png(np.zeros((0, 5, 4), np.uint8), 1)
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((5, 5, 4), np.float32), 1)


# ---- phones' formats and colour (issue 24) ------------------------------------------------------


def two_colour_rgb() -> np.ndarray:
    rgb = np.zeros((96, 128, 3), np.uint8)
    rgb[:, :64] = (200, 40, 40)
    rgb[:, 64:] = (40, 200, 40)
    return rgb


def saved(rgb: np.ndarray, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, fmt, **kw)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heic_and_avif_decode(fmt: str) -> None:
    data = saved(two_colour_rgb(), fmt, quality=90)
    image = decode(data, LIMIT)
    assert image.format == fmt and image.size == (128, 96)
    assert np.abs(image.rgb[48, 20].astype(int) - (200, 40, 40)).max() <= 4
    assert np.abs(image.rgb[48, 100].astype(int) - (40, 200, 40)).max() <= 4
    with pytest.raises(ImageTooLarge, match="128x96 = 12288 pixels exceeds"):  # from the header
        decode(data, 12_000)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
@pytest.mark.parametrize("cut", [0.05, 0.5, 0.97])
def test_a_truncated_heic_or_avif_is_incomplete(fmt: str, cut: float) -> None:
    data = saved(two_colour_rgb(), fmt, quality=90)
    with pytest.raises(ImageIncomplete):
        decode(data[: int(len(data) * cut)], LIMIT)


def test_ten_bit_heic_is_scaled_to_eight_bits() -> None:
    import pillow_heif

    ten_bit = np.array([1000, 512, 64], np.uint16) << 6  # 10-bit values in the high bits of 16
    heif = pillow_heif.from_bytes(mode="RGB;16", size=(32, 32), data=np.tile(ten_bit, (32, 32, 1)).tobytes())
    buffer = io.BytesIO()
    heif.save(buffer, quality=-1)
    assert pillow_heif.open_heif(io.BytesIO(buffer.getvalue()), convert_hdr_to_8bit=False).info["bit_depth"] == 10
    got = decode(buffer.getvalue(), LIMIT).rgb[16, 16].astype(float)
    assert np.abs(got - np.array([1000, 512, 64]) * 255 / 1023).max() <= 3  # scaled, not clipped at 255


def test_heic_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    image = decode(saved(two_colour_rgb(), "HEIF", quality=90, exif=exif.tobytes()), LIMIT)
    assert image.size == (96, 128)
    assert image.rgb[10, 48, 0] > 150 and image.rgb[120, 48, 1] > 150  # red on top, green below


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "HEIF"])
def test_a_display_p3_photo_comes_out_srgb_with_its_colour(fmt: str) -> None:
    from tests.icc import display_p3_icc, p3_pixel_for

    patch = (200, 100, 50)  # a colour inside both gamuts: its sRGB numbers must come back
    p3 = p3_pixel_for(patch)
    assert np.abs(np.array(p3) - patch).max() > 10  # an unconverted photo would show it off
    data = saved(
        np.full((64, 64, 3), p3, np.uint8),
        fmt,
        icc_profile=display_p3_icc(),
        **({} if fmt == "PNG" else {"quality": 95}),
    )
    got = decode(data, LIMIT).rgb[32, 32].astype(int)
    assert np.abs(got - patch).max() <= 3


def test_colour_outputs_carry_one_fixed_srgb_profile() -> None:
    from PIL import ImageCms

    from unet_matting.watcher.processing.imageio import encode_jpeg, encode_webp, srgb_icc

    rgba = np.zeros((20, 30, 4), np.uint8)
    for data in (encode_png(rgba, 1), encode_webp(rgba, 80), encode_jpeg(rgba[..., :3], 90)):
        icc = Image.open(io.BytesIO(data)).info["icc_profile"]
        assert icc == srgb_icc()
        assert "sRGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    assert "icc_profile" not in Image.open(io.BytesIO(encode_png(rgba[..., 3], 1))).info
    assert encode_png(rgba, 1) == encode_png(rgba, 1)  # no date or counter in the file
