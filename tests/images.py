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
