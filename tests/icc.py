"""A Display P3 ICC profile built by hand (no such profile ships with Debian's colour packages).

An ICC v2 matrix/TRC display profile: the P3 primaries with a D65 white point, adapted to the
D50 connection space with the Bradford transform, and the sRGB tone curve as a 4096-entry table.
"""

from __future__ import annotations

import struct

import numpy as np

P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
SRGB_PRIMARIES = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
D65 = (0.3127, 0.3290)
D50_XYZ = np.array([0.9642, 1.0, 0.8249])
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def _xyz(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz(primaries: tuple, white: tuple[float, float]) -> np.ndarray:
    """The matrix from linear RGB to XYZ (Y of white = 1) for the given chromaticities."""
    columns = np.stack([_xyz(p) for p in primaries], axis=1)
    scale = np.linalg.solve(columns, _xyz(white))
    return columns * scale


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    return np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz_tag(xyz: np.ndarray) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in xyz)


def _desc(text: str) -> bytes:
    ascii_ = text.encode() + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_)) + ascii_ + b"\0" * 4 + b"\0" * 4 + b"\0\0\0" + b"\0" * 67


def display_p3_icc() -> bytes:
    d65 = _xyz(D65)
    adapt = np.linalg.inv(BRADFORD) @ np.diag((BRADFORD @ D50_XYZ) / (BRADFORD @ d65)) @ BRADFORD
    colorants = adapt @ rgb_to_xyz(P3_PRIMARIES, D65)
    curve = np.rint(srgb_decode(np.linspace(0, 1, 4096)) * 65535).astype(">u2").tobytes()
    trc = b"curv\0\0\0\0" + struct.pack(">I", 4096) + curve
    tags = [
        (b"desc", _desc("Display P3 (test)")),
        (b"cprt", b"text\0\0\0\0" + b"public domain\0"),
        (b"wtpt", _xyz_tag(D50_XYZ)),
        (b"rXYZ", _xyz_tag(colorants[:, 0])),
        (b"gXYZ", _xyz_tag(colorants[:, 1])),
        (b"bXYZ", _xyz_tag(colorants[:, 2])),
        (b"rTRC", trc),
        (b"gTRC", trc),
        (b"bTRC", trc),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + b"".join(_s15(v) for v in D50_XYZ)
        + b"\0" * 4
        + b"\0" * 16
        + b"\0" * 28
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def p3_pixel_for(srgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """The Display P3 numbers of the colour that is ``srgb`` in sRGB (the same light)."""
    linear = srgb_decode(np.array(srgb) / 255.0)
    xyz = rgb_to_xyz(SRGB_PRIMARIES, D65) @ linear
    p3 = np.linalg.solve(rgb_to_xyz(P3_PRIMARIES, D65), xyz)
    return tuple(int(v) for v in np.rint(srgb_encode(p3) * 255))
