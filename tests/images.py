"""Builders for real image files, good and bad, used across the tests."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def product_rgb(width: int = 320, height: int = 240, seed: int = 0) -> np.ndarray:
    """A grey-backdrop 'product' photo: a textured disc, so predictions have structure."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    disc = ((xx - width / 2) ** 2 + (yy - height / 2) ** 2) < (min(width, height) / 3) ** 2
    img = np.full((height, width, 3), 225, np.uint8)
    img[disc] = rng.integers(20, 120, (int(disc.sum()), 3), dtype=np.uint8)
    return img


def jpeg_bytes(rgb: np.ndarray | None = None, quality: int = 90, **save_kw) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(product_rgb() if rgb is None else rgb).save(buffer, "JPEG", quality=quality, **save_kw)
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png16_rgb_bytes(values: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write RGB;16)."""
    height, width, _ = values.shape
    raw = b"".join(b"\0" + values[y].astype(">u2").tobytes() for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def png_bomb_bytes(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", raw) + _chunk(b"IEND", b"")


def exif_rotated_jpeg(width: int = 200, height: int = 100, orientation: int = 6) -> bytes:
    """Stored ``width`` x ``height`` with an EXIF orientation tag (6 = rotate 90° clockwise)."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, : width // 2] = (255, 0, 0)  # left half red, so the rotation is observable
    exif = Image.Exif()
    exif[0x0112] = orientation
    return jpeg_bytes(rgb, exif=exif.tobytes())


def cmyk_jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("CMYK", (64, 48), (0, 255, 255, 0)).save(buffer, "JPEG")  # pure red in CMYK
    return buffer.getvalue()


def animated_bytes(fmt: str = "GIF") -> bytes:
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def palette_png_bytes(transparent: bool = True) -> bytes:
    im = Image.new("P", (40, 30), 1)
    im.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    im.paste(0, (0, 0, 10, 30))
    buffer = io.BytesIO()
    im.save(buffer, "PNG", **({"transparency": 0} if transparent else {}))
    return buffer.getvalue()


def studio_packshot(
    width: int = 240,
    height: int = 200,
    backdrop: tuple[float, float, float] = (246, 246, 244),
    body: tuple[float, float, float] = (250, 250, 250),
    sweep: float = 0.0,
    vignette: float = 0.0,
    shadow: float = 0.0,
    seed: int = 0,
    falloff: float = 0.0,
    spot: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rgb uint8, product mask bool, print mask bool): a box on a seamless studio backdrop.

    The box is ``body`` coloured with a shaded right face, a darker rim (its form turning from
    the light) and a printed logo in its middle (the print mask); the backdrop has a vertical
    ``sweep`` (share of its lightness lost from bottom to top), ``vignette`` (share lost at the
    corners), a soft floor ``shadow`` (share of light taken under the box) and a ``falloff``
    (share lost at the bottom corners, light from above the middle: x^2 (y + 1/2)^2, beyond a
    quadratic surface), a ``spot`` (share of light added round the product and next to none at the
    frame's edges, which the border cannot show), plus noise.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = yy / height - 0.5, xx / width - 0.5
    light = (1 + sweep * y) * (1 - vignette * (x * x + y * y) / 0.5) * (1 - falloff * (x * (y + 0.5)) ** 2 / 0.25)
    light *= 1 + spot * np.exp(-(x * x + y * y) / 0.06)
    image = np.asarray(backdrop, np.float32)[None, None] * light[..., None]
    top, bottom, left, right = int(0.25 * height), int(0.8 * height), int(0.3 * width), int(0.7 * width)
    if shadow:
        spread = np.where(yy >= bottom, 0.04 * height, 0.015 * height)  # fades out fast above the floor line
        floor = np.exp(-(((yy - bottom) / spread) ** 2) - ((xx - (left + right) / 2) / (0.3 * width)) ** 4)
        image *= 1 - shadow * floor[..., None]
    box = (yy >= top) & (yy < bottom) & (xx >= left) & (xx < right)
    shade = np.where(xx >= right - (right - left) // 4, 0.85, 0.97)
    rim = ~((yy >= top + 2) & (yy < bottom - 2) & (xx >= left + 2) & (xx < right - 2))
    shade = np.where(rim, 0.9, shade)
    image = np.where(box[..., None], np.asarray(body, np.float32)[None, None] * shade[..., None], image)
    cy, cx = (top + bottom) / 2, (left + right) / 2 - (right - left) / 8
    logo = ((yy - cy) / (0.08 * height)) ** 2 + ((xx - cx) / (0.08 * width)) ** 2 < 1
    image[logo] = (200, 40, 30)
    image += rng.normal(0, 1.0, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), box, logo


def glass_packshot(width: int = 240, height: int = 240, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(rgb uint8, masks): a clear bottle on white. Its body shows the backdrop through it (6% of
    the light absorbed), its sides refract into dark rims, a paper label and a cap are opaque.
    Masks: ``bottle`` (all of it), ``body`` (clear glass, away from rims and label), ``label``,
    ``cap``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.full((height, width, 3), 246.0, np.float32)
    left, right, top, bottom = int(0.35 * width), int(0.65 * width), int(0.2 * height), int(0.85 * height)
    bottle = (yy >= top) & (yy < bottom) & (xx >= left) & (xx < right)
    rims = bottle & ((xx < left + 4) | (xx >= right - 4) | (yy >= bottom - 4))
    cap = bottle & (yy < top + int(0.1 * height))
    label = bottle & (yy >= int(0.5 * height)) & (yy < int(0.65 * height)) & ~rims
    image[bottle] *= 0.94
    image[rims] = (120, 125, 130)
    image[cap] = (30, 60, 140)
    image[label] = (220, 180, 60)
    image += rng.normal(0, 1.0, image.shape)
    body = bottle & ~rims & ~cap & ~label
    body &= (xx >= left + 8) & (xx < right - 8) & (yy >= top + int(0.1 * height) + 4)
    body &= ~((yy >= int(0.5 * height) - 4) & (yy < int(0.65 * height) + 4))
    rgb = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return rgb, {"bottle": bottle, "body": body, "label": label & (xx >= left + 8) & (xx < right - 8), "cap": cap}
