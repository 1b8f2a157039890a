"""Studio backdrops: find one in a photo, and let it complete the network's matte.

A packshot's backdrop (white, grey or one colour; a sweep gradient, vignetting and a floor
shadow allowed) is the easiest background there is, and the one a matting network fails on
in the most common way: a white product on white comes out as its printed pictures and
letters, floating. These pure functions on arrays work at a small working scale
(``WORK_SIDE``), so the cost does not grow with the photo:

1. ``fit_backdrop``: the frame's border that the network's product does not cover is fitted
   with a smooth surface (quadratic in x and y, per CIELAB channel, refitted without outliers
   such as a floor shadow). A backdrop is found when that surface explains the border all
   round, and explains most of what the network calls background inside the frame too (a
   lifestyle photo with a plain wall at its edges fails there).
2. ``backdrop_area``: pixels that look like the backdrop (within its noise of the surface,
   or darker with the same hue: a shadow) and are joined to the frame's border without
   crossing an edge are backdrop; the rest is product. Colour distance is CIELAB's; edges are
   steps of lightness, so a white box is closed off by its own shading even where its
   colour matches the backdrop. A sweep blown out to 255 in some or all channels has lost its
   own cast or hue, which its shadows still show: there a shadow is judged by the channels
   the clipping left (``clipped_shadow``). A white product with no such step all round (a
   T-shirt's sleeves) is told apart by its own faint tint (``tinted``): its chromaticity,
   smoothed, is evenly off the backdrop's by more than the backdrop's own smoothed noise.
   ``lit_backdrop`` then takes in the backdrop beside the product that the border's surface
   does not explain (lit brighter round the product) but the backdrop round it does.
3. ``missed_body``: the network keeps its matte (fine structure, soft edges) everywhere; the region
   only adds the body the network left out, in the objects the network did find (a stray
   shape the network ignored stays out), and only where it is thicker than the edge band (hair
   and thin strands stay the network's). Enclosed backdrop the network also calls background
   (a handle's hole) stays a hole, unless it is tinted and the network's matte rose over it
   above its level on the backdrop. Shadows are never added: they are backdrop here.
   ``_raise_to`` draws that body in at full scale.
4. ``keyed`` (profiles with ``see_through``): difference keying against the known surface.

With no backdrop, ``complete_matte`` returns the network's matte object itself: the output is
byte-identical to a pipeline without this step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from unet_matting.engine.filters import area_resize, bilinear_resize, gaussian, label
from unet_matting.engine.morphology import grow, shrink, square
from unet_matting.engine.opacity import BODY
from unet_matting.engine.regions import means, members

WORK_SIDE = 400  # long side of the working copy (px)
BORDER = 0.03  # width of the border ring, as a share of the short side
UNCOVERED = 0.5  # share of the ring the product must leave free to judge the backdrop
EXPLAINED_BORDER = 0.85  # share of the free ring the surface must explain, on three sides at least
EXPLAINED_INSIDE = 0.6  # share of the network's background inside the frame it must explain
NOISE_FLOOR = 2.0  # CIELAB delta E: the smallest noise allowance (JPEG, sensor)
NOISE_CEILING = 6.0  # a border noisier than this is texture, not a studio backdrop
SHADOW_DEPTH = 45.0  # lightness a shadow may take away (L* units)
SHADOW_FLOOR = ((116 - SHADOW_DEPTH) / 116) ** 3  # linear light: what a shadow that deep leaves of white
BACKGROUND = 0.1  # network alpha under which the network calls a pixel background
SHADOW_PATCH = 0.5  # a missed patch more shadow than this is a shadow, unless it is outlined
OUTLINED = 0.5  # share of a patch's side towards the backdrop that must be a step to outline it
JND = 1.0  # delta E of a just-noticeable difference: a patch this close to the backdrop beside it is backdrop
EDGE_SHIFT = 2  # working px the region reaches past a step (its blur and the gap closing)
KEY_OPAQUE = 25.0  # delta E from the backdrop at which difference keying calls a pixel opaque
GAP = 1  # working px: edges grow this much, closing gaps of twice that in an outline
UNSURE = 0.15  # network alpha from which a pixel may be product: the backdrop does not claim it
EDGE_BAND = 3  # working px: the network's edge band, never overruled
GRAIN_FLOOR = 0.3  # L* per px: the smallest step allowance of a backdrop
EDGE_FACTOR = 2.0  # a step this many times sharper than the backdrop's own grain is an edge
WEAK_EDGE_FACTOR = 0.8  # a fainter step continuing an edge is part of it
FINE_SIGMA, COARSE_SIGMA = 0.8, 2.5  # working px: the two scales of ``sharpness``
STEP_RATIO = 1.5  # fine/coarse gradient ratio from which a change is a step (a blur of ~1.5 px)
TINT_SIGMA = 1.5  # working px: the smoothing under which a product's faint, even tint stands out of the noise
TINT_FACTOR = 2.5  # a smoothed chroma offset this many times the backdrop's own (90th percentile) is a tint
JPEG_CHROMA_BLOCK = 16  # full-scale px: a JPEG chroma block (8 samples at 4:2:0), whose offset is not a tint
FAINT = 1e-3  # network alpha: the least a faint response must reach over a patch to count
TINT_FLOOR = 0.2  # delta E: the smallest tint counted (well under one 8-bit level of a light colour)
LOCAL_SIGMA = 12.0  # working px: the reach of the backdrop's local colour beside the product
LOCAL_SHARE = 0.1  # the least share of backdrop round a pixel to judge it by the local colour
OUTLINE_SIGMA = 0.7  # working px: the smoothing that turns a completed body's staircase into a curve
CLIPPED_LEVEL = 254  # 8-bit level from which a channel is at the camera's (or the retoucher's) white
CLIPPED_SHARE = 0.5  # share of the free border at that white from which the backdrop is clipped
WHITE_CAST = 1.25  # linear light: how far a white sweep's channels may differ when all are clipped (~8 % in 8 bits)
HEADROOM = 4.0  # linear light: how far past 255 a clipped channel may truly be (a sweep two stops over)


@dataclass(frozen=True)
class Backdrop:
    """A smooth backdrop: CIELAB as a quadratic surface of the frame coordinates."""

    coefficients: np.ndarray  # 6x3: [1, x, y, x^2, xy, y^2] -> L*, a*, b*
    noise: float  # delta E a backdrop pixel may stray from the surface

    def lab(self, height: int, width: int) -> np.ndarray:
        """The surface's CIELAB over an HxW grid (float32 HxWx3), term by term (broadcast rows
        and columns: ~15x faster than a design-matrix product over every pixel)."""
        y, x = _axes(height, width)
        y, x = y[:, None], x[None, :]
        c = self.coefficients.astype(np.float32)
        out = np.empty((height, width, 3), np.float32)
        for ch in range(3):
            c0, cx, cy, cxx, cxy, cyy = c[:, ch]
            out[..., ch] = (c0 + cy * y + cyy * y * y) + (cx + cxy * y) * x + cxx * x * x
        return out

    def lab_at(self, rows: np.ndarray, cols: np.ndarray, height: int, width: int) -> np.ndarray:
        """The surface's CIELAB (float32 ...x3) at pixels (rows, cols) of an HxW frame."""
        y = rows / np.float32(max(1, height - 1)) - 0.5
        x = cols / np.float32(max(1, width - 1)) - 0.5
        flat = _design(np.ravel(y), np.ravel(x)) @ self.coefficients
        return flat.reshape(*np.shape(y), 3).astype(np.float32)


def _axes(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates of the frame, -0.5 .. 0.5 (the fit is scale-free)."""
    return (
        np.linspace(-0.5, 0.5, height, dtype=np.float32),
        np.linspace(-0.5, 0.5, width, dtype=np.float32),
    )


def _design(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1).astype(np.float64)


_LINEAR = ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4
_LINEAR[:11] = np.arange(11) / 255.0 / 12.92
_LINEAR = _LINEAR.astype(np.float32)
_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]], np.float32) / np.array(
    [[0.9505], [1.0], [1.089]], np.float32
)  # rows divided by the D65 white


_RGB_FROM_XYZ = np.linalg.inv(_XYZ.astype(np.float64)).astype(np.float32)


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of an sRGB uint8 HxWx3 image, float32 HxWx3.

    Written out channel by channel in float32: numpy's matmul over a stack of 3-vectors and
    float64 cube roots were ~4x the cost of the rest of the step's working-scale maths."""
    r, g, b = (_LINEAR[rgb[..., c]] for c in range(3))  # each channel contiguous
    fx, fy, fz = (_lab_f(r * m0 + g * m1 + b * m2) for m0, m1, m2 in _XYZ)
    lab = np.empty(rgb.shape, np.float32)
    lab[..., 0] = np.float32(116) * fy - np.float32(16)
    lab[..., 1] = np.float32(500) * (fx - fy)
    lab[..., 2] = np.float32(200) * (fy - fz)
    return lab


def _lab_f(t: np.ndarray) -> np.ndarray:
    """CIELAB's f: the cube root, linear near black (float32 power: ~2.5x np.cbrt here)."""
    f = np.power(t, np.float32(1 / 3))
    dark = t <= np.float32(0.008856)
    f[dark] = t[dark] * np.float32(7.787) + np.float32(16 / 116)
    return f


def working_copy(rgb: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(photo, matte, factor): both shrunk by a whole factor (box means) so the long side is at
    most ``WORK_SIDE``; working pixel (i, j) covers full pixels [i k, (i + 1) k) x [j k, (j + 1) k)."""
    factor = max(1, -(-max(alpha.shape) // WORK_SIDE))
    if factor == 1:
        return rgb, alpha, 1
    small = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).reduce(factor))
    return small, np.asarray(Image.fromarray(np.ascontiguousarray(alpha), "F").reduce(factor)), factor


def _strips(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four border strips of an HxW array: top, bottom, left, right."""
    b = max(2, round(BORDER * min(mask.shape)))
    return mask[:b], mask[-b:], mask[:, :b], mask[:, -b:]


def ring(height: int, width: int) -> np.ndarray:
    """The border ring (HxW bool), ``BORDER`` of the short side wide."""
    out = np.zeros((height, width), bool)
    for strip in _strips(out):
        strip[...] = True
    return out


def _smoother_design(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``_design`` with the terms that a sweep times a strong vignette adds (x^2 y, x y^2, x^2 y^2).

    Only to judge whether the border is smooth at all: the border alone pins these terms down
    poorly inside the frame, so the backdrop's own surface stays quadratic (its noise allowance
    then includes what it misses of the vignette)."""
    return np.concatenate([_design(y, x), np.stack([x * x * y, x * y * y, x * x * y * y], axis=1)], axis=1)


def _robust_fit(design: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """(coefficients, noise, kept): a least-squares fit of ``values`` refitted without what the fit
    before did not explain, and the delta E its kept points stray within."""
    keep = np.ones(len(values), bool)
    noise = NOISE_FLOOR
    terms = design.shape[1]
    for _ in range(3):
        d = design[keep]  # normal equations: ~5x faster than an SVD least-squares fit here
        coefficients = np.linalg.solve(d.T @ d + 1e-9 * np.eye(terms), d.T @ values[keep])
        distance = np.linalg.norm(values - design @ coefficients, axis=1)
        noise = max(NOISE_FLOOR, 2.5 * 1.4826 * float(np.median(distance[keep])))
        keep = distance <= noise
    return coefficients, noise, keep


def fit_backdrop(lab: np.ndarray, alpha: np.ndarray) -> Backdrop | None:
    """A smooth surface that explains the frame's border all round, or None (step 1).

    Only the border the network's product leaves free counts; the fit is repeated without
    what it does not explain (a floor shadow, a stray object at the edge). A border noisier
    than ``NOISE_CEILING`` under the surface is texture unless a more flexible smooth surface
    explains it (a sweep under a strong vignette).
    """
    height, width = alpha.shape
    border = ring(height, width)
    free = border & (alpha < BACKGROUND)
    if free.sum() < UNCOVERED * border.sum():
        return None
    rows, cols = np.nonzero(free)
    y, x = _axes(height, width)
    values = lab[rows, cols].astype(np.float64)
    coefficients, noise, keep = _robust_fit(_design(y[rows], x[cols]), values)
    if noise > NOISE_CEILING and _robust_fit(_smoother_design(y[rows], x[cols]), values)[1] > NOISE_CEILING:
        return None  # not even a more flexible smooth surface explains the border: texture
    if keep.mean() < EXPLAINED_BORDER:
        return None
    explained = np.zeros_like(free)
    explained[rows[keep], cols[keep]] = True
    if sum(float(s.mean()) >= 0.25 for s in _strips(explained)) < 3:
        return None
    return Backdrop(coefficients, noise)


def resemblance(lab: np.ndarray, surface: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """(close, shadow) bool for colours ``lab`` (...x3) and the backdrop's ``surface`` at them:
    within the backdrop's ``noise`` of its surface; or darker with the backdrop's own
    chromaticity, a shadow on it.

    A shadow scales the backdrop's light, X, Y and Z alike; CIELAB's cube root turns that into
    a common factor of a*, b* and L* + 16, so (a*, b*) / (L* + 16) stays the backdrop's.
    """
    diff = lab - surface
    noise2 = np.float32(noise**2)
    close = _within(diff, noise)
    darker = -diff[..., 0]
    da, db = chroma_offset(lab, surface)
    shadow = (darker > noise / 2) & (darker <= SHADOW_DEPTH) & (da * da + db * db <= noise2)
    return close, shadow


def clipped_channels(rgb: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Which of the backdrop's channels are blown out (bool 3): at the white of 8 bits over most
    of the ``free`` border (HxW bool)."""
    if not free.any():
        return np.zeros(3, bool)
    return (rgb[free] >= CLIPPED_LEVEL).mean(axis=0) >= CLIPPED_SHARE


def clipped_shadow(rgb: np.ndarray, surface: np.ndarray, clipped: np.ndarray, noise: float) -> np.ndarray:
    """Pixels (HxW bool) that are a shadow on a backdrop blown out in the ``clipped`` channels.

    A sweep lit above the product (the usual pure-white packshot) clips to 255 and so hides how
    bright those channels truly are, and with them its own cast or hue, which its shadows,
    within range, still show: compared with the clipped surface such a shadow looks tinted. A
    shadow is the backdrop's light times one factor s < 1 in every channel (linear light): s is
    what the channels the clipping left (the surface's own) say, within the ``noise``; each
    clipped channel is at least s times the white, and at most ``HEADROOM`` times that; with every
    channel clipped, the shadow's channels lie within ``WHITE_CAST`` of each other (a white's)."""
    light = [_LINEAR[rgb[..., c]] for c in range(3)]  # each channel contiguous
    tol = np.float32(noise * 3 / 116)  # the noise in linear light near white (dY / dL* there is 3/116)
    if clipped.all():
        top, low = (
            np.maximum(np.maximum(light[0], light[1]), light[2]),
            np.minimum(np.minimum(light[0], light[1]), light[2]),
        )
        return (low < 1 - tol) & (top <= np.float32(WHITE_CAST) * low) & (low >= SHADOW_FLOOR)
    base = _linear_from_lab(surface)
    kept = [light[c] / np.maximum(base[c], np.float32(1e-4)) for c in range(3) if not clipped[c]]
    s_low, s_high = np.minimum.reduce(kept), np.maximum.reduce(kept)
    ok = (s_high <= (1 + tol) * s_low) & (s_high < 1 - tol / 2) & (s_low >= SHADOW_FLOOR)
    for c in np.flatnonzero(clipped):
        ok &= (light[c] >= (1 - tol) * s_low) & (light[c] <= np.float32(HEADROOM) * s_high)
    return ok


def _linear_from_lab(lab: np.ndarray) -> list[np.ndarray]:
    """Linear sRGB of CIELAB (D65) colours (HxWx3 float32), ``to_lab`` undone: the three channels
    (HxW float32 each, not clipped)."""
    fy = (lab[..., 0] + np.float32(16)) / np.float32(116)
    xyz = []
    for f in (fy + lab[..., 1] / np.float32(500), fy, fy - lab[..., 2] / np.float32(200)):
        xyz.append(np.where(f > np.float32(6 / 29), f * f * f, (f - np.float32(16 / 116)) / np.float32(7.787)))
    return [xyz[0] * m0 + xyz[1] * m1 + xyz[2] * m2 for m0, m1, m2 in _RGB_FROM_XYZ]


def _within(diff: np.ndarray, noise: float) -> np.ndarray:
    """Where a colour difference (...x3, CIELAB) is within ``noise`` delta E (bool)."""
    return np.einsum("...k,...k->...", diff, diff) <= np.float32(noise**2)


def chroma_offset(lab: np.ndarray, surface: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(da, db): how far the chromaticity of ``lab`` is from the backdrop's at the same lightness
    ratio (a shadow on the backdrop has none), in a*, b* units."""
    scale = (lab[..., 0] + 16) / (surface[..., 0] + 16)
    return lab[..., 1] - scale * surface[..., 1], lab[..., 2] - scale * surface[..., 2]


def _chroma_block(factor: int) -> int:
    """A JPEG chroma block's side at the working scale of ``factor`` (working px, rounded up)."""
    return -(-JPEG_CHROMA_BLOCK // factor)


def tinted(lab: np.ndarray, calm: np.ndarray, alpha: np.ndarray, factor: int) -> np.ndarray:
    """Pixels whose colour is evenly off the backdrop's chromaticity (HxW bool): a white product's
    own faint tint, measurable once smoothed (``TINT_SIGMA``), away from what the network saw.

    A backdrop's chromaticity, (a*, b*) / (L* + 16), is the same in its light and in its shadows
    and vignetting (they scale its light), so it is fitted on its ``calm`` part as a plane of the
    frame's coordinates; a pixel's offset is its (a*, b*) less that chromaticity at its own
    lightness, and counts as a tint when it is ``TINT_FACTOR`` times what the calm part's offsets
    reach (their 90th percentile: noise; JPEG's chroma blocks are rarer, and alone). Within a
    JPEG chroma block of what the network calls body (``alpha``) nothing counts: JPEG spills a
    found product's chroma over its edge, into the floor shadow beside it."""
    height, width = lab.shape[:2]
    if calm.sum() < 10:
        return np.zeros((height, width), bool)
    y, x = _axes(height, width)
    rows, cols = np.nonzero(calm)
    design = np.stack([np.ones(len(rows)), x[cols], y[rows]], axis=1)
    light = lab[..., 0] + np.float32(16)
    chroma = lab[rows, cols, 1:] / light[rows, cols, None]
    fit = np.linalg.lstsq(design, chroma, rcond=None)[0].astype(np.float32)  # 3x2
    offset = np.empty((2, height, width), np.float32)
    for ch in range(2):
        c0, cx, cy = fit[:, ch]
        plane = (c0 + cy * y)[:, None] + (cx * x)[None, :]
        offset[ch] = gaussian(lab[..., 1 + ch] - light * plane, TINT_SIGMA)
    magnitude = np.hypot(offset[0], offset[1])
    own = float(np.quantile(magnitude[calm], 0.9))
    tint = magnitude > max(TINT_FLOOR, TINT_FACTOR * own)
    block = -(-_chroma_block(factor) // 2)
    tint = grow(shrink(tint, block), block)  # an opening: lone blocks go, a product stays
    return tint & ~grow(alpha > BODY, _chroma_block(factor))


def _gradient(light: np.ndarray, sigma: float) -> np.ndarray:
    """Sobel gradient magnitude of ``light`` smoothed by a Gaussian of ``sigma`` (L* per px).

    Smoothed first (a Gaussian: engine/filters.py), then Sobel's difference and [1, 2, 1] passes
    on shifted slices of one edge-padded copy, summed in float64 as scipy's correlate1d sums its
    taps (the same bits, at 0.6x its cost): fewer multiplications than folding each Sobel tap
    into the Gaussian, which cost twice as much at the coarse scale."""
    padded = np.pad(gaussian(light, sigma), 1, mode="edge")  # the filter's reflect, one tap deep
    down = padded[2:] - padded[:-2]  # h x (w + 2)
    across = padded[:, 2:] - padded[:, :-2]  # (h + 2) x w
    dy = (down[:, :-2].astype(np.float64) + 2.0 * down[:, 1:-1] + down[:, 2:]).astype(np.float32)
    dx = (across[:-2].astype(np.float64) + 2.0 * across[1:-1] + across[2:]).astype(np.float32)
    return np.hypot(dy, dx) / np.float32(8.0)


def sharpness(lab: np.ndarray) -> np.ndarray:
    """How much steeper lightness changes at a fine scale than ``STEP_RATIO`` times a coarse one
    (L* per px).

    A product's outline is a step: ~2.7x steeper at the fine scale than at the coarse one. A
    shadow's penumbra or a sweep is about as steep at both, so it scores zero however dark it
    is; so do the pixels beside a step, which keeps edges thin.
    """
    light = np.ascontiguousarray(lab[..., 0])
    return np.maximum(_gradient(light, FINE_SIGMA) - STEP_RATIO * _gradient(light, COARSE_SIGMA), 0)


def _hysteresis(strength: np.ndarray, high: float, low: float) -> np.ndarray:
    """Pixels over ``low`` joined (8-connected) to a pixel over ``high``: a faint outline
    continues a clear one, as in Canny's edge tracking; faint specks alone do not count."""
    weak = strength > low
    labels, count = label(weak, eight=True)
    return members(labels, count, labels[strength > high]) if count else weak


def backdrop_grain(sharp: np.ndarray, calm: np.ndarray) -> float:
    """The sharpness the backdrop itself reaches (noise, JPEG blocks): 99th percentile on its
    ``calm`` part (the free border that looks like it)."""
    return max(GRAIN_FLOOR, float(np.quantile(sharp[calm], 0.99))) if calm.any() else GRAIN_FLOOR


def edge_mask(sharp: np.ndarray, grain: float) -> np.ndarray:
    """The edges no backdrop crosses (HxW bool): lightness steps sharper than the backdrop's own
    ``grain``, faint ones continuing clear ones, grown to close a gap of one pixel."""
    return grow(_hysteresis(sharp, EDGE_FACTOR * grain, WEAK_EDGE_FACTOR * grain), GAP)


def backdrop_area(alpha: np.ndarray, close: np.ndarray, shadow: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Backdrop-looking pixels joined, without crossing an edge, to at least two sides of the
    frame (HxW bool): a product cut by one side of the frame does not count as backdrop there.

    Besides the ``edges``, whatever the network calls at all likely product (``UNSURE``) that is
    not a shadow closes it off: a white bottle whose cap has no edge against the backdrop is
    still closed off where the network saw it faintly.
    """
    open_backdrop = (close | shadow) & ~edges & ((alpha < UNSURE) | shadow)
    labels, _ = label(open_backdrop)
    sides = np.zeros(labels.max() + 1, int)
    for strip in _strips(labels):
        sides[np.unique(strip)] += 1
    sides[0] = 0
    return (sides >= 2)[labels]


def lit_backdrop(
    area: np.ndarray, lab: np.ndarray, alpha: np.ndarray, edges: np.ndarray, tint: np.ndarray, noise: float
) -> np.ndarray:
    """``area`` grown into the pixels beside it that look like the backdrop round them, within its
    ``noise`` of the area's local colour (HxW bool); not across an edge, not tinted, not what the
    network saw. The smooth surface comes from the border, and the light round a product can be
    brighter than there (a spotlight on the sweep): beside the product the backdrop then strays
    from the surface by more than its noise and, joined to the product, was completed as body.

    The local colour is the area's mean under a Gaussian of ``LOCAL_SIGMA``, where the area makes
    up ``LOCAL_SHARE`` of it at least; computed at a quarter of the working scale (it is smooth)."""
    height, width = area.shape
    coarse = (max(1, width // 4), max(1, height // 4))
    share = gaussian(area_resize(area.astype(np.float32), coarse), LOCAL_SIGMA / 4)
    sums = gaussian(area_resize(np.where(area[..., None], lab, np.float32(0)), coarse), LOCAL_SIGMA / 4)
    reach = bilinear_resize(share, (width, height)) > LOCAL_SHARE
    reach &= ~area & ~edges & ~tint & (alpha < UNSURE)
    if not reach.any():
        return area
    local = sums / np.maximum(share, np.float32(1e-6))[..., None]
    like = reach & _within(lab - bilinear_resize(local, (width, height)), noise)
    labels, count = label(area | like)
    return members(labels, count, np.unique(labels[area]))


def missed_body(
    alpha: np.ndarray,
    area: np.ndarray,
    lab: np.ndarray,
    surface: np.ndarray,
    shadow: np.ndarray,
    sharp: np.ndarray,
    grain: float,
    tint: np.ndarray,
    calm: np.ndarray,
) -> np.ndarray:
    """Working-scale body to make opaque (HxW bool): the parts of the product region (not
    backdrop) the network left out, in the objects it found, thicker than its edge band; and,
    in those objects, all that lies deeper than the edge band (the network's own soft alpha
    inside a body, round a print, becomes opaque too: the interior is opaque), and the thin parts
    the opening took where they continue the body (``_continued``: a slot between print lines).

    Each missed patch must look like the body of a plain product, not like what else a region
    enclosed by the product can be: it stays out when it is mostly a shadow on the backdrop
    (the backdrop's hue, darker) without a product's outline (a step) along most of its side
    towards the backdrop,
    when it is textured (hair, foliage, machinery: its mean sharpness is an edge's), or when
    its colour is within a just-noticeable difference of the backdrop beside it, or of the
    backdrop's surface where nothing borders it (backdrop seen through a handle or between a
    sleeve and the body, which the flood could not reach), unless it is ``tint``ed and the
    network's median alpha over it is above ``FAINT`` and above what it reaches on the backdrop's
    ``calm`` border: a white product the network half saw (a backdrop's own drift of colour has
    no such response).
    """
    found = alpha > BODY
    objects, object_count = label(~area)
    if object_count == 0:
        return np.zeros_like(area)
    hits = np.unique(objects[found & ~area])
    unseen = members(objects, object_count, hits) & ~found
    missed = grow(shrink(unseen, EDGE_BAND), EDGE_BAND) & unseen  # an opening: thin parts go
    thin = unseen & ~missed
    patches, count = label(missed)
    if count == 0:
        return missed
    index = np.arange(1, count + 1)
    strong = grow(sharp > EDGE_FACTOR * grain, 2)
    border = missed & grow(area, 1)  # the patch's pixels next to the backdrop
    sides = np.bincount(patches[border], minlength=count + 1)[1:]
    stepped = np.bincount(patches[border], strong[border], minlength=count + 1)[1:]
    outlined = stepped >= OUTLINED * sides  # true too for a patch the product encloses: no shadow
    labels = patches[missed]
    shadowed = (means(shadow[missed], labels, count) > SHADOW_PATCH) & ~outlined
    textured = means(sharp[missed], labels, count) > EDGE_FACTOR * grain
    beside = grow(missed, 3) & area
    owner = square(patches, 3, np.maximum)  # the patch each beside-pixel borders
    colour = means(lab[missed], labels, count)
    around = means(lab[beside], owner[beside], count)  # nan where nothing borders the backdrop
    under = means(surface[missed], labels, count)
    around = np.where(np.isnan(around), under, around)
    # a patch of the backdrop's colour is product only when its tint and the network both say so:
    # a white product's faint tint, where the network's matte rose above its level on the backdrop
    seen_through = np.linalg.norm(colour - around, axis=1) <= JND
    asked = seen_through & (means(tint[missed], labels, count) >= 0.5)
    if asked.any():  # medians only over the patches in question (a sort of their pixels alone)
        within = members(patches, count, index[asked])
        level = max(FAINT, float(np.quantile(alpha[calm], 0.9))) if calm.any() else FAINT
        seen_through[asked] = ndimage.median(alpha[within], patches[within], index[asked]) <= level
    drop = shadowed | textured | seen_through
    if drop.any():
        missed &= ~members(patches, count, index[drop])
    if not missed.any():
        return missed
    completed = members(objects, object_count, objects[missed])
    deep = shrink(~area, EDGE_BAND) & completed & (found | _continued(thin, area, missed, found, lab, surface))
    # the region reaches over the edge's blur into the backdrop: pull it back to the step
    return (missed | deep) & ~grow(area, EDGE_SHIFT)


def _continued(
    thin: np.ndarray, area: np.ndarray, body: np.ndarray, found: np.ndarray, lab: np.ndarray, surface: np.ndarray
) -> np.ndarray:
    """The parts of ``thin`` (what the opening took) that continue the missed ``body`` (HxW
    bool): a slot between two print lines on a white shirt, the shirt's own fabric. Each part
    touches no ``area`` pixel (a sliver along the outline does), runs into the body, and its
    colour is nearer the body's beside it than the backdrop's surface under it (the sky between
    a wing and its strut is the sky's colour, not the fuselage's). Colours are taken away from
    what the network ``found`` where a part has such pixels: the print's blurred rim is ink."""
    parts, count = label(thin, eight=True)
    if count == 0:
        return thin
    beside = grow(thin, 1) & body
    owner = square(parts, 1, np.maximum)  # the part each beside-pixel borders
    chosen = np.zeros(count + 1, bool)
    chosen[1:] = np.bincount(owner[beside], minlength=count + 1)[1:] > 0
    chosen[parts[grow(area, 1) & thin]] = False
    if chosen.any():
        ink = grow(found, 1)
        colour = _mean_away(lab, thin, parts, count, ink)
        under = _mean_away(surface, thin, parts, count, ink)
        fabric = _mean_away(lab, beside, owner, count, ink)
        chosen[1:] &= np.linalg.norm(colour - fabric, axis=1) < np.linalg.norm(colour - under, axis=1)
    chosen[0] = False
    return chosen[parts]


def _mean_away(values: np.ndarray, mask: np.ndarray, labels: np.ndarray, count: int, avoid: np.ndarray) -> np.ndarray:
    """Mean ``values`` (HxWx3) over each label's pixels in ``mask`` outside ``avoid``, or over
    all its pixels in ``mask`` where none lies outside (count x 3; nan for a label with none)."""
    away = mask & ~avoid
    out = means(values[away], labels[away], count)
    missing = np.isnan(out[:, 0])
    if missing.any():
        out[missing] = means(values[mask], labels[mask], count)[missing]
    return out


def complete_matte(
    rgb: np.ndarray, alpha: np.ndarray, mode: str = "auto", see_through: bool = False, overwrite: bool = False
) -> np.ndarray:
    """The network's matte completed by the photo's backdrop; ``alpha`` itself when there is none.

    ``see_through``: the completed matte is then capped by difference keying (``keyed``).
    ``overwrite``: the caller has no further use for ``alpha``, so it is completed in place
    rather than copied (a 12 MP matte is 48 MB); otherwise ``alpha`` is left as it was."""
    if mode == "off" or alpha.size == 0:
        return alpha
    small_rgb, small_alpha, factor = working_copy(rgb, alpha)
    lab = to_lab(small_rgb)
    backdrop = fit_backdrop(lab, small_alpha)
    if backdrop is None:
        return alpha
    surface = backdrop.lab(*lab.shape[:2])
    background = small_alpha < BACKGROUND
    border = ring(*small_alpha.shape)
    close, shadow = resemblance(lab, surface, backdrop.noise)
    clipped = clipped_channels(small_rgb, border & background)
    # a sweep blown out in some channel: its shadows show the cast or hue that the clipping hid
    hidden = clipped_shadow(small_rgb, surface, clipped, backdrop.noise) if clipped.any() else np.zeros_like(close)
    shadow |= hidden
    if (close | shadow)[background].mean() < EXPLAINED_INSIDE:  # a plain wall round a busy scene
        return alpha
    calm = close & border & background  # the free border that looks like the backdrop
    sharp = sharpness(lab)
    grain = backdrop_grain(sharp, calm)
    tint = tinted(lab, calm, small_alpha, factor) & ~hidden  # a sweep's hidden cast is not a product's tint
    plain = close.copy()  # backdrop-coloured, tint or not: where the product's own outline cannot be seen
    close &= ~tint
    shadow &= ~tint
    edges = edge_mask(sharp, grain)
    area = lit_backdrop(backdrop_area(small_alpha, close, shadow, edges), lab, small_alpha, edges, tint, backdrop.noise)
    body = missed_body(small_alpha, area, lab, surface, shadow, sharp, grain, tint, calm)
    completed = _raise_to(alpha, body, factor, rgb, backdrop, plain, overwrite) if body.any() else alpha
    return keyed(rgb, completed, backdrop, overwrite or completed is not alpha) if see_through else completed


def keyed(rgb: np.ndarray, alpha: np.ndarray, backdrop: Backdrop, overwrite: bool = False) -> np.ndarray:
    """``alpha`` capped by difference keying against the known backdrop (HxW float32).

    Behind a clear bottle is the backdrop itself, so how far a product pixel's colour is from the
    backdrop's surface there measures how much of it is the product: within the backdrop's noise
    nothing (fully see-through), ``KEY_OPAQUE`` delta E or more all (a label, a cap), linear in
    between; lightly smoothed against noise. Computed only in the matte's bounding box; in
    ``alpha`` itself with ``overwrite``."""
    rows, cols = np.nonzero(alpha > 0)
    if not len(rows):
        return alpha
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    yy, xx = np.broadcast_arrays(np.arange(y0, y1)[:, None], np.arange(x0, x1)[None, :])
    diff = to_lab(rgb[y0:y1, x0:x1]) - backdrop.lab_at(yy, xx, *alpha.shape)
    distance = gaussian(np.sqrt((diff * diff).sum(axis=2)), 1.0)
    share = np.clip((distance - backdrop.noise) / (KEY_OPAQUE - backdrop.noise), 0, 1).astype(np.float32)
    out = alpha if overwrite else alpha.copy()
    np.minimum(out[y0:y1, x0:x1], share, out=out[y0:y1, x0:x1])
    return out


def _mean3(padded: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The 3x3 mean at pixels (ys, xs) of an array held with a one-pixel margin (``padded``,
    its edges repeated there): only where asked, not everywhere, and no index clamped."""
    width = padded.shape[1]
    flat = padded.ravel()
    centre = (ys + 1) * width + (xs + 1)
    total = np.zeros(len(ys), np.float32)
    for offset in (-width - 1, -width, -width + 1, -1, 0, 1, width - 1, width, width + 1):
        total += flat[centre + offset]
    return total / np.float32(9)


def _bilinear(small: np.ndarray, ys: np.ndarray, xs: np.ndarray, factor: int) -> np.ndarray:
    """``small`` upsampled by ``factor`` (bilinear, pixel centres aligned, edges clamped, as
    Pillow's resize), at full-scale pixels (ys, xs) only."""
    height, width = small.shape

    def taps(at: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        source = np.clip((at + np.float32(0.5)) / np.float32(factor) - np.float32(0.5), 0, size - 1)
        low = source.astype(np.int64)
        return low, np.minimum(low + 1, size - 1), (source - low).astype(np.float32)

    y0, y1, wy = taps(ys, height)
    x0, x1, wx = taps(xs, width)
    top = small[y0, x0] + (small[y0, x1] - small[y0, x0]) * wx
    bottom = small[y1, x0] + (small[y1, x1] - small[y1, x0]) * wx
    return top + (bottom - top) * wy


def _blocks(mask: np.ndarray, factor: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-scale (rows, cols) of the ``factor`` x ``factor`` blocks under a working-scale mask,
    inside a ``height`` x ``width`` crop: no full-scale mask is built or scanned."""
    ys, xs = np.nonzero(mask)
    offsets = np.arange(factor)
    rows, cols = np.broadcast_arrays(
        ys[:, None, None] * factor + offsets[None, :, None], xs[:, None, None] * factor + offsets[None, None, :]
    )
    rows, cols = rows.ravel(), cols.ravel()
    inside = (rows < height) & (cols < width)
    return rows[inside], cols[inside]


def _raise_to(
    alpha: np.ndarray,
    body: np.ndarray,
    factor: int,
    rgb: np.ndarray,
    backdrop: Backdrop,
    plain: np.ndarray,
    overwrite: bool,
) -> np.ndarray:
    """``alpha`` with the working-scale ``body`` drawn in at full scale, touching only the body's
    bounding box (in ``alpha`` itself with ``overwrite``, else in a copy).

    The outline is the body's, smoothed (``OUTLINE_SIGMA``) and upsampled bilinearly, then cut
    at half: a curve through the working pixels, not their staircase, about two full-scale pixels
    soft. Where the product beside the outline is visible against the backdrop (not ``plain``
    there), the full-scale pixels within the backdrop's noise of its surface are dropped, so the
    outline lands on the photo's own pixels rather than on the working grid; where the product
    looks like the backdrop (a white shirt on white) a single pixel cannot tell, and testing it
    would only fray the outline. A 3x3 mean leaves it one pixel soft. Away from the outline the
    body is 0 or 1, so only the outline's pixels are interpolated: the inside is whole blocks,
    set at once.
    """
    rows, cols = np.nonzero(body)
    y0, y1 = max(0, rows.min() - 2), min(body.shape[0], rows.max() + 3)
    x0, x1 = max(0, cols.min() - 2), min(body.shape[1], cols.max() + 3)
    part = body[y0:y1, x0:x1]
    fy0, fx0 = y0 * factor, x0 * factor
    fy1, fx1 = min(alpha.shape[0], y1 * factor), min(alpha.shape[1], x1 * factor)
    height, width = fy1 - fy0, fx1 - fx0
    inner = shrink(part, 1)
    outline = grow(part, 1) & ~inner
    padded = np.zeros((height + 2, width + 2), np.float32)  # a one-pixel margin for the 3x3 mean
    big = padded[1:-1, 1:-1]
    np.copyto(big, np.float32(1), where=np.repeat(np.repeat(inner, factor, 0), factor, 1)[:height, :width])
    ys, xs = _blocks(outline, factor, height, width)
    smooth = gaussian(part, OUTLINE_SIGMA)
    steep = np.float32(max(2, factor))  # the cut's slope: 0 to 1 over about two full-scale px
    ramp = np.clip((_bilinear(smooth, ys, xs, factor) - np.float32(0.5)) * steep + np.float32(0.5), 0, 1)
    keep = ramp > 0
    ys, xs, ramp = ys[keep], xs[keep], ramp[keep]
    if len(ys):
        visible = ~grow(plain[y0:y1, x0:x1] & part, 1)[ys // factor, xs // factor]
        vy, vx = ys[visible] + fy0, xs[visible] + fx0
        close, _ = resemblance(to_lab(rgb[vy, vx]), backdrop.lab_at(vy, vx, *alpha.shape), backdrop.noise)
        ramp[np.flatnonzero(visible)[close]] = 0.0
        big[ys, xs] = ramp
        padded[0], padded[-1] = padded[1], padded[-2]
        padded[:, 0], padded[:, -1] = padded[:, 1], padded[:, -2]
        ry, rx = _blocks(grow(outline, 1), factor, height, width)
        big[ry, rx] = _mean3(padded, ry, rx)
    out = alpha if overwrite else alpha.copy()
    view = out[fy0:fy1, fx0:fx1]
    np.maximum(view, big, out=view)
    return out
