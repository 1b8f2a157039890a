"""Decoding uploads and encoding cut-outs: the one module that touches image file formats.

Decoding is the last proof that an upload is complete: the whole image is loaded, so a
truncated JPEG fails here (Pillow's ``verify()`` would pass it). The pixel limit is checked from
the header, before any pixel is decoded, so decompression bombs never reach memory.
"""

from __future__ import annotations

import functools
import io
import struct
import warnings
import zlib
from dataclasses import dataclass

import cv2
import deflate
import numpy as np
import pillow_heif
from PIL import Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

from unet_matting.engine.errors import ImageError, ImageIncomplete, ImageTooLarge

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "TIFF", "HEIF", "AVIF"})
# ISO base media files (HEIC, HEIF, AVIF) start with a box size, "ftyp" and a brand.
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")
# How each accepted format starts: (offset, bytes). WebP is RIFF....WEBP; TIFF and BigTIFF both byte orders.
SIGNATURES = (
    ((0, b"\xff\xd8\xff"),),
    ((0, PNG_SIGNATURE),),
    ((0, b"RIFF"), (8, b"WEBP")),
    ((0, b"II*\x00"),),
    ((0, b"MM\x00*"),),
    ((0, b"II+\x00"),),
    ((0, b"MM\x00+"),),
    *(((0, b"\0\0"), (4, b"ftyp"), (8, brand)) for brand in HEIF_BRANDS),  # a small ftyp box first
)
# HEIC/HEIF through pillow-heif (libheif); AVIF through Pillow's own plugin (Pillow >= 11.3).
# 10-bit HEIC is scaled to 8 bits by libheif (the whole range, not clipped).
pillow_heif.register_heif_opener(thumbnails=False)
Image.MAX_IMAGE_PIXELS = None  # our own limit, checked before load, replaces Pillow's warning
ImageFile.LOAD_TRUNCATED_IMAGES = False
_SRGB = ImageCms.createProfile("sRGB")
ACCEPTED = "accepted: JPEG, PNG, WebP, TIFF, HEIC/HEIF, AVIF"
ORIENTATION = 0x0112  # the EXIF tag
RGB_READ = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV 4.11+: decoded as RGB, not BGR


@dataclass(frozen=True)
class Decoded:
    """An upload as pixels: RGB uint8 HxWx3, its own alpha (HxW uint8) if it had one."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    format: str
    source_mode: str

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]


def decode(data: bytes, max_pixels: int) -> Decoded:
    """Decode a whole image from bytes into RGB (+ alpha); raises ``ImageError`` with a reason."""
    if not data:
        raise ImageError("empty file (0 bytes)")
    if not could_be_image(data):
        raise ImageError(_not_accepted(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageIncomplete("the header is incomplete") from None
        with im:
            _check_header(im, max_pixels)
            plain = _plain_jpeg_pixels(im, data)
            if plain is not None:
                return Decoded(plain, None, "JPEG", "RGB")
            try:
                im.load()
            except (OSError, SyntaxError, ValueError, RuntimeError, Image.DecompressionBombError) as e:
                raise ImageIncomplete(f"cannot decode {im.format}: {str(e).strip()}") from e
            return _to_arrays(im)


def _plain_jpeg_pixels(im: Image.Image, data: bytes) -> np.ndarray | None:
    """The RGB pixels of a plain JPEG (RGB, upright, no ICC profile, its end-of-image marker at
    the end) by OpenCV's decoder, or None for Pillow's path.

    Both are libjpeg-turbo with the same accurate DCT and upsampling: the same pixels (tested),
    but OpenCV writes them straight into an array, where Pillow's image is copied out (12 MP: ~75
    -> ~50 ms). OpenCV decodes a truncated JPEG without an error, so only a file that ends with
    its end-of-image marker takes this path (a marker byte pair never occurs in the coded data,
    and an embedded thumbnail's marker comes before the photo's own frame header); anything
    else, an upload still being written included, goes to Pillow, which fails it."""
    if im.format != "JPEG" or im.mode != "RGB" or im.info.get("icc_profile") or not data.endswith(b"\xff\xd9"):
        return None
    if im.getexif().get(ORIENTATION, 1) != 1:
        return None
    buffer = np.frombuffer(data, np.uint8)
    if RGB_READ is not None:
        rgb = cv2.imdecode(buffer, RGB_READ | cv2.IMREAD_IGNORE_ORIENTATION)
    else:  # OpenCV before 4.11 decodes to BGR only
        bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        rgb = None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return rgb if rgb is not None and rgb.shape == (im.height, im.width, 3) else None


def could_be_image(data: bytes) -> bool:
    """True when ``data`` starts like an accepted format, or is a prefix of such a start.

    Whatever fails this can never become an image by more bytes arriving: it is refused at
    once; a truncated image passes and waits for the rest (``decode_grace_s``).
    """
    return any(
        all(data[offset : offset + len(magic)] == magic[: max(0, len(data) - offset)] for offset, magic in signature)
        for signature in SIGNATURES
    )


def _not_accepted(data: bytes) -> str:
    """Why bytes that are no accepted image are refused: the format Pillow sees, or their start."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return f"unsupported format {im.format}; {ACCEPTED}"
    except Exception:  # Pillow's many reasons all mean the same here: not an image it knows
        return f"not a JPEG, PNG, WebP, TIFF, HEIC or AVIF file (it starts with {data[:12].hex(' ')})"


def _check_header(im: Image.Image, max_pixels: int) -> None:
    if im.format not in ACCEPTED_FORMATS:
        raise ImageError(f"unsupported format {im.format}; {ACCEPTED}")
    width, height = im.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{width}x{height} = {width * height} pixels exceeds engine.max_input_pixels = {max_pixels}"
        )
    if width == 0 or height == 0:
        raise ImageError(f"image has no pixels ({width}x{height})")
    # MPO (a camera's JPEG with a preview) and HEIF (a phone's photo with its depth map, burst
    # frames) open on their primary image; elsewhere more frames mean an animation or pages.
    if getattr(im, "n_frames", 1) > 1 and im.format not in ("MPO", "HEIF"):
        raise ImageError(f"{im.format} has {im.n_frames} frames (animated or multi-page); upload a single still image")


def _to_arrays(im: Image.Image) -> Decoded:
    source_mode = im.mode
    fmt = im.format or "?"
    ImageOps.exif_transpose(im, in_place=True)  # a new image only when it turns (a 12 MP copy saved)
    if im.mode == "CMYK":
        im = _cmyk_to_rgb(im)
    if im.mode.startswith("I") or im.mode == "F":
        im = Image.fromarray(_wide_to_8bit(np.asarray(im), im.mode), "L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGB", "RGBA") and im.info.get("icc_profile"):
        im = _to_srgb(im)
    # convert() to the mode an image already has is a copy, and so is np.array: one copy, not three
    if im.mode in ("LA", "La", "PA", "RGBa", "RGBA") or "transparency" in im.info:
        rgba = np.asarray(im if im.mode == "RGBA" else im.convert("RGBA"))
        return Decoded(np.ascontiguousarray(rgba[..., :3]), rgba[..., 3].copy(), fmt, source_mode)
    return Decoded(np.array(im if im.mode == "RGB" else im.convert("RGB")), None, fmt, source_mode)


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    """CMYK through its embedded ICC profile when it has one; Pillow's naive formula otherwise."""
    icc = im.info.get("icc_profile")
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(im, src, _SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError):
            pass  # a broken profile must not lose the image; fall back to the formula
    return im.convert("RGB")


def _to_srgb(im: Image.Image) -> Image.Image:
    """Convert from an embedded ICC profile (Adobe RGB, Display P3, ...) to sRGB.

    Dropping the profile instead would show such photos dull or shifted in every browser.
    sRGB-tagged images pass through untouched; a broken profile is ignored, not fatal.
    """
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"]))
        if "srgb" in ImageCms.getProfileDescription(src).lower().replace(" ", ""):
            return im
        return ImageCms.profileToProfile(im, src, _SRGB, outputMode=im.mode)
    except (ImageCms.PyCMSError, OSError):
        return im


def _wide_to_8bit(values: np.ndarray, mode: str) -> np.ndarray:
    """16-bit, 32-bit or float greyscale to 8 bits by scaling, not by clipping at 255."""
    top = float(values.max(initial=0))
    if mode.startswith("I;16") or (mode == "I" and top > 255):
        scale = 255.0 / 65535.0
    elif mode == "F" and top <= 1.0:
        scale = 255.0
    else:
        scale = 1.0
    return np.clip(np.rint(values.astype(np.float64) * scale), 0, 255).astype(np.uint8)


@functools.cache
def srgb_icc() -> bytes:
    """The sRGB ICC profile every colour output carries (LittleCMS's built-in sRGB, ~600 bytes).

    Its creation date is set to a fixed one, so the same pixels always give the same file."""
    made = bytearray(ImageCms.ImageCmsProfile(_SRGB).tobytes())
    made[24:36] = struct.pack(">6H", 2026, 1, 1, 0, 0, 0)  # the header's dateTimeNumber
    return bytes(made)


def written_rgb(data: bytes) -> np.ndarray:
    """The RGB pixels of a file this process wrote (a rendition checked after encoding)."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


PNG_COLOUR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type: greyscale, RGB, RGBA
PNG_UP = 2  # PNG's "Up" filter: each byte minus the byte above it


def encode_png(pixels: np.ndarray, compress_level: int) -> bytes:
    """PNG bytes of an RGBA (HxWx4), RGB (HxWx3) or greyscale (HxW) uint8 array.

    A standard 8-bit PNG (IHDR, iCCP, one IDAT, IEND): every row filtered with PNG's Up filter in
    numpy, the rows compressed by libdeflate (the ``deflate`` package) at ``compress_level``.
    Colour images carry the sRGB profile (``srgb_icc``); a greyscale matte carries none.
    Pillow's encoder tries every filter on every row and deflates with zlib: on a 2000 px
    cut-out ~3x slower, and its file larger (docs/models.md, "Speed").
    """
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or 0 in pixels.shape[:2]:
        raise ValueError(f"expected a non-empty HxW or HxWxC uint8 array, got {pixels.shape} {pixels.dtype}")
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = np.ascontiguousarray(pixels).reshape(height, width * channels)
    filtered = np.empty((height, width * channels + 1), np.uint8)
    filtered[:, 0] = PNG_UP
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # uint8 wraps modulo 256, as PNG's Up does
    header = struct.pack(">IIBBBBB", width, height, 8, PNG_COLOUR_TYPES[channels], 0, 0, 0)
    data = deflate.zlib_compress(filtered.data, compress_level)
    colour = _png_chunk(b"iCCP", b"sRGB\0\0" + zlib.compress(srgb_icc(), 9)) if channels > 1 else b""
    return PNG_SIGNATURE + _png_chunk(b"IHDR", header) + colour + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """Baseline sRGB JPEG bytes of an RGB uint8 array, the sRGB profile embedded."""
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, "JPEG", quality=quality, optimize=True, icc_profile=srgb_icc())
    return buffer.getvalue()


def encode_webp(rgba: np.ndarray, quality: int) -> bytes:
    """Lossy WebP with a lossless alpha plane (edges stay exact), the sRGB profile embedded."""
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "WEBP", quality=quality, method=4, icc_profile=srgb_icc())
    return buffer.getvalue()
