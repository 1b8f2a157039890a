"""Studio packshots with exact alpha: light products on seamless backdrops (issue 21's data).

    .venv/bin/python -m bench.packshots OUT_DIR [--count 300] [--seed 0] [--side 800] [--overlit]

Writes OUT_DIR/images/NAME.jpg and OUT_DIR/masks/NAME.png, the shape of ../shared/data/eval,
deterministic per (seed, index). Never trained on. Each photo is one product drawn at 3x and
box-filtered down, so the mask is the product's exact coverage: snack bags with printed art,
boxes, opaque bottles, tubes, tubs and T-shirts, mostly white or cream (the case a network
misses: a white body on a white backdrop), some pastel and some coloured. Backdrops are white,
light grey or one colour, with a sweep gradient, vignetting, a soft floor shadow under the
product (sometimes a cast shadow beside it), sensor noise and JPEG compression. Shadows are on
the backdrop, never in the mask. Some products stand on the frame's bottom edge (a cropped
packshot). ``--overlit`` draws the same scenes with the sweep lit above the product, clipped to
255 where its light exceeds it (the usual pure-white packshot; its floor shadow stays in range).
What this set cannot show: real lens blur and specular plastic, see the issue.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SUPER = 3  # drawing scale: masks are box-filtered coverage of a 3x drawing
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
KINDS = ("bag", "box", "bottle", "tube", "tub", "shirt")
WORDS = ("CRISPS", "SEA SALT", "ORGANIC", "NATURAL", "PAPRIKA", "FRESH", "SOFT", "CREAM", "MILK", "CLASSIC")


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(FONT, size)
    except OSError:
        return ImageFont.load_default(size=size)


def _body_colour(rng: np.random.Generator) -> np.ndarray:
    pick = rng.random()
    if pick < 0.7:  # white, cream, silver-white
        return np.array([rng.uniform(236, 252)] * 3) + rng.uniform(-5, 4, 3)
    if pick < 0.85:  # pastel
        return rng.uniform(190, 245, 3)
    return rng.uniform(30, 200, 3)


def _cylinder(width: int, height: int, rng: np.random.Generator, edge: float) -> np.ndarray:
    """Shading across a round body: ``edge`` at the sides, 1 in the middle, a soft highlight."""
    u = np.linspace(0.0, 1.0, width, dtype=np.float32)
    shade = edge + (1 - edge) * np.clip(np.sin(np.pi * u), 0, 1) ** 0.6
    spot = rng.uniform(0.2, 0.45)
    shade = shade + rng.uniform(0.0, 0.06) * np.exp(-(((u - spot) / 0.05) ** 2))
    return np.broadcast_to(shade[None, :], (height, width)).copy()


def _wrinkles(width: int, height: int, rng: np.random.Generator, amount: float) -> np.ndarray:
    coarse = rng.normal(0, 1, (6, 6)).astype(np.float32)
    field = np.asarray(Image.fromarray(coarse, "F").resize((width, height), Image.BICUBIC))
    return 1 + amount * field / (np.abs(field).max() + 1e-6)


def _print_art(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], rng: np.random.Generator) -> None:
    """Printed pictures and letters inside ``box``: what a network segments on a white bag."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    for _ in range(int(rng.integers(1, 4))):  # the "chips" picture: blobs of saturated colour
        cx, cy = x0 + rng.uniform(0.2, 0.8) * w, y0 + rng.uniform(0.45, 0.8) * h
        rx, ry = rng.uniform(0.08, 0.2) * w, rng.uniform(0.05, 0.12) * h
        colour = tuple(int(c) for c in rng.uniform(20, 230, 3))
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=colour)
    if rng.random() < 0.5:  # a colour band
        by = y0 + rng.uniform(0.05, 0.3) * h
        draw.rectangle(
            (x0, by, x1, by + rng.uniform(0.04, 0.1) * h), fill=tuple(int(c) for c in rng.uniform(0, 220, 3))
        )
    size = max(8, int(h * rng.uniform(0.06, 0.11)))
    font = _font(size)
    for line in range(int(rng.integers(1, 3))):
        word = str(rng.choice(WORDS))
        colour = tuple(int(c) for c in rng.uniform(0, 160, 3))
        draw.text((x0 + 0.1 * w, y0 + 0.12 * h + line * 1.3 * size), word, fill=colour, font=font)


def _bag(w: int, h: int, rng: np.random.Generator) -> tuple[Image.Image, np.ndarray, tuple[int, int, int, int]]:
    crimp = int(h * rng.uniform(0.05, 0.09))
    teeth = int(rng.integers(12, 30))
    bulge = w * rng.uniform(0.0, 0.04)
    pts = []
    for i in range(teeth + 1):  # crimped top edge, left to right
        pts.append((i * w / teeth, (crimp * 0.25) * (i % 2)))
    for t in np.linspace(0, 1, 24):  # right side, pinched towards the crimps
        pts.append((w - bulge * (1 - np.sin(np.pi * t)), crimp + t * (h - 2 * crimp)))
    for i in range(teeth, -1, -1):
        pts.append((i * w / teeth, h - (crimp * 0.25) * (i % 2)))
    for t in np.linspace(1, 0, 24):
        pts.append((bulge * (1 - np.sin(np.pi * t)), crimp + t * (h - 2 * crimp)))
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).polygon(pts, fill=255)
    shade = _cylinder(w, h, rng, rng.uniform(0.8, 0.93)) * _wrinkles(w, h, rng, rng.uniform(0.02, 0.06))
    rows = np.arange(h)
    crimped = (rows < crimp) | (rows >= h - crimp)
    shade[crimped] *= (0.93 + 0.05 * np.sin(rows[crimped] * 0.9))[:, None]
    return mask, shade, (int(0.08 * w), crimp + int(0.04 * h), int(0.92 * w), h - crimp - int(0.04 * h))


def _box(w: int, h: int, rng: np.random.Generator) -> tuple[Image.Image, np.ndarray, tuple[int, int, int, int]]:
    side = int(w * rng.uniform(0.15, 0.3))
    top = int(h * rng.uniform(0.06, 0.14))
    front = w - side
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).polygon([(0, top), (side, 0), (w, 0), (w, h - top), (front, h), (0, h)], fill=255)
    shade = np.full((h, w), rng.uniform(0.95, 1.0), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    right = xx >= front
    shade[right] = rng.uniform(0.78, 0.9)  # the side face, turned from the light
    shade[(yy < top) & ~right] = rng.uniform(0.98, 1.03)  # the lid, facing the light
    return mask, shade, (int(0.06 * front), top + int(0.05 * h), int(0.94 * front), h - int(0.05 * h))


def _bottle(w: int, h: int, rng: np.random.Generator) -> tuple[Image.Image, np.ndarray, tuple[int, int, int, int]]:
    neck_w, cap_h, shoulder = w * rng.uniform(0.3, 0.45), h * rng.uniform(0.08, 0.14), h * rng.uniform(0.08, 0.18)
    mask = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(mask)
    d.rounded_rectangle((0, cap_h + shoulder * 0.6, w - 1, h - 1), radius=int(w * 0.18), fill=255)
    d.polygon(
        [
            ((w - neck_w) / 2, cap_h),
            ((w + neck_w) / 2, cap_h),
            (w * 0.97, cap_h + shoulder),
            (w * 0.03, cap_h + shoulder),
        ],
        fill=255,
    )
    d.rectangle(((w - neck_w) / 2, 0, (w + neck_w) / 2, cap_h), fill=255)
    shade = _cylinder(w, h, rng, rng.uniform(0.72, 0.88))
    return mask, shade, (int(0.1 * w), int(cap_h + shoulder * 1.5), int(0.9 * w), int(h * 0.85))


def _tube(w: int, h: int, rng: np.random.Generator) -> tuple[Image.Image, np.ndarray, tuple[int, int, int, int]]:
    crimp, cap = int(h * 0.05), int(h * rng.uniform(0.08, 0.12))
    cap_w = w * rng.uniform(0.35, 0.55)
    mask = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(mask)
    d.polygon([(0, 0), (w, 0), (w, crimp), (w * 0.75, h - cap), (w * 0.25, h - cap), (0, crimp)], fill=255)
    d.rounded_rectangle(((w - cap_w) / 2, h - cap - 2, (w + cap_w) / 2, h - 1), radius=int(cap_w * 0.1), fill=255)
    shade = _cylinder(w, h, rng, rng.uniform(0.78, 0.9))
    return mask, shade, (int(0.2 * w), int(0.12 * h), int(0.8 * w), int(0.7 * h))


def _tub(w: int, h: int, rng: np.random.Generator) -> tuple[Image.Image, np.ndarray, tuple[int, int, int, int]]:
    lid = int(h * rng.uniform(0.15, 0.25))
    mask = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(mask)
    d.ellipse((0, 0, w - 1, lid * 2), fill=255)
    d.rectangle((0, lid, w - 1, h - lid), fill=255)
    d.ellipse((0, h - 2 * lid, w - 1, h - 1), fill=255)
    shade = _cylinder(w, h, rng, rng.uniform(0.75, 0.9))
    shade[: lid + 1] = np.minimum(1.03, shade[: lid + 1] * 1.06)
    return mask, shade, (int(0.15 * w), int(1.3 * lid), int(0.85 * w), h - lid)


def _shirt(w: int, h: int, rng: np.random.Generator) -> tuple[Image.Image, np.ndarray, tuple[int, int, int, int]]:
    s = rng.uniform(0.18, 0.26)
    pts = [
        (0.35, 0),
        (0.65, 0),
        (1.0, 0.12),
        (1.0 - s * 0.6, 0.38),
        (0.8, 0.3),
        (0.8, 1.0),
        (0.2, 1.0),
        (0.2, 0.3),
        (s * 0.6, 0.38),
        (0.0, 0.12),
    ]
    mask = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(mask)
    d.polygon([(x * w, y * h) for x, y in pts], fill=255)
    d.ellipse((0.4 * w, -0.06 * h, 0.6 * w, 0.07 * h), fill=0)  # the neckline
    shade = np.full((h, w), 0.97, np.float32) * _wrinkles(w, h, rng, rng.uniform(0.05, 0.1))
    return mask, shade, (int(0.3 * w), int(0.25 * h), int(0.7 * w), int(0.55 * h))


SHAPES: dict[str, Callable] = {"bag": _bag, "box": _box, "bottle": _bottle, "tube": _tube, "tub": _tub, "shirt": _shirt}
ASPECTS = {
    "bag": (0.55, 0.8),
    "box": (0.6, 1.1),
    "bottle": (0.3, 0.45),
    "tube": (0.25, 0.4),
    "tub": (0.9, 1.3),
    "shirt": (0.85, 1.05),
}


def product(kind: str, height: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(RGB float 0..255, alpha 0..1) of one product ``height`` px tall, drawn at 3x."""
    lo, hi = ASPECTS[kind]
    h = height * SUPER
    w = int(h * rng.uniform(lo, hi))
    mask, shade, art_box = SHAPES[kind](w, h, rng)
    art = Image.fromarray(np.clip(_body_colour(rng)[None, None] * np.ones((h, w, 1)), 0, 255).astype(np.uint8))
    if rng.random() < 0.9:
        _print_art(ImageDraw.Draw(art), art_box, rng)
    if kind in ("bottle", "tube", "tub") and rng.random() < 0.7:  # a coloured cap or lid
        cap = tuple(int(c) for c in rng.uniform(20, 240, 3))
        d = ImageDraw.Draw(art)
        if kind == "bottle":
            d.rectangle((0, 0, w, int(0.1 * h)), fill=cap)
        elif kind == "tube":
            d.rectangle((0, int(0.9 * h), w, h), fill=cap)
        else:
            d.rectangle((0, 0, w, int(0.18 * h)), fill=cap)
    colour = np.asarray(art, np.float32) * shade[..., None]
    alpha = np.asarray(mask, np.float32) / 255.0
    # box-filter premultiplied colour and coverage down to the photo's scale
    small = (w // SUPER, h // SUPER)
    pre = Image.fromarray(np.clip(colour * alpha[..., None], 0, 255).astype(np.uint8))
    a_img = Image.fromarray((alpha * 255).astype(np.uint8))
    pre_s = np.asarray(pre.resize(small, Image.BOX), np.float32)
    a_s = np.asarray(a_img.resize(small, Image.BOX), np.float32) / 255.0
    rgb = np.where(a_s[..., None] > 0, pre_s / np.maximum(a_s[..., None], 1e-3), 0)
    return np.clip(rgb, 0, 255), a_s


def backdrop(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A seamless studio sweep: one colour, a vertical gradient and vignetting (float 0..255)."""
    pick = rng.random()
    if pick < 0.55:
        base = np.array([rng.uniform(238, 255)] * 3) + rng.uniform(-3, 2, 3)
    elif pick < 0.8:
        base = np.array([rng.uniform(175, 230)] * 3) + rng.uniform(-4, 4, 3)
    else:
        base = rng.uniform(120, 240, 3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = yy / height - 0.5, xx / width - 0.5
    sweep = 1 + rng.uniform(-0.08, 0.08) * y
    vignette = 1 - rng.uniform(0.0, 0.15) * (x**2 + y**2) / 0.5
    return np.clip(base[None, None] * (sweep * vignette)[..., None], 0, 255)


def _shadow(alpha: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int], rng: np.random.Generator):
    """Darkening factor of the backdrop (HxW, 0..1): a soft floor shadow and maybe a cast one."""
    h, w = shape
    top, left, ph, pw = box
    shadow = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(shadow)
    floor = top + ph
    spread = pw * rng.uniform(0.5, 0.65)
    cx = left + pw / 2
    d.ellipse((cx - spread, floor - ph * 0.03, cx + spread, floor + ph * rng.uniform(0.03, 0.08)), fill=255)
    out = np.asarray(shadow.filter(ImageFilter.GaussianBlur(ph * 0.03)), np.float32) / 255 * rng.uniform(0.15, 0.35)
    if rng.random() < 0.35:  # a cast shadow: the silhouette, shifted and blurred
        cast = np.zeros(shape, np.float32)
        dx, dy = int(pw * rng.uniform(0.05, 0.25)) * int(rng.choice([-1, 1])), int(ph * rng.uniform(0.0, 0.05))
        y0, x0 = max(0, top + dy), max(0, left + dx)
        y1, x1 = min(h, top + dy + ph), min(w, left + dx + pw)
        if y1 > y0 and x1 > x0:
            cast[y0:y1, x0:x1] = alpha[y0 - top - dy : y1 - top - dy, x0 - left - dx : x1 - left - dx]
        cast_img = Image.fromarray(np.rint(cast * 255).astype(np.uint8))
        blurred = cast_img.filter(ImageFilter.GaussianBlur(pw * rng.uniform(0.02, 0.06)))
        out = np.maximum(out, np.asarray(blurred, np.float32) / 255 * rng.uniform(0.1, 0.25))
    return out


def packshot(seed: int, side: int = 800, overlit: bool = False) -> tuple[bytes, np.ndarray, str]:
    """(JPEG bytes, mask uint8, kind) of packshot number ``seed``; ``overlit``: the sweep lit
    6-30 % above the product, as for the usual pure-white packshot, so it clips to 255 while the
    product and most of the floor shadow stay within range (the same product and frame)."""
    rng = np.random.default_rng([21, seed])
    w_ratio = float(rng.choice([1.0, 0.8, 0.75, 1.333]))
    width, height = (side, int(side / w_ratio)) if w_ratio >= 1 else (int(side * w_ratio), side)
    kind = str(rng.choice(KINDS))
    fg, fa = product(kind, int(height * rng.uniform(0.45, 0.8)), rng)
    ph, pw = fa.shape
    while pw > 0.85 * width:  # too wide for the frame: draw it smaller (a redraw varies its shape)
        fg, fa = product(kind, int(ph * 0.85 * width / pw), rng)
        ph, pw = fa.shape
    left = int(rng.uniform(0.3, 0.7) * (width - pw))
    cropped = rng.random() < 0.15  # stands on the frame's bottom edge
    top = height - ph + int(ph * 0.05) if cropped else int(rng.uniform(0.5, 0.85) * (height - ph))
    alpha = np.zeros((height, width), np.float32)
    colour = np.zeros((height, width, 3), np.float32)
    vis = min(ph, height - top)
    alpha[top : top + vis, left : left + pw] = fa[:vis]
    colour[top : top + vis, left : left + pw] = fg[:vis]
    back = backdrop(height, width, rng)
    if overlit:
        back *= rng.uniform(1.06, 1.3)
    back *= 1 - _shadow(alpha, (top, left, ph, pw), (height, width), rng)[..., None]
    image = alpha[..., None] * colour + (1 - alpha[..., None]) * np.clip(back, 0, 255)
    image += rng.normal(0, rng.uniform(0.5, 2.0), image.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8)).save(
        buffer, "JPEG", quality=int(rng.integers(85, 96))
    )
    return buffer.getvalue(), np.rint(alpha * 255).astype(np.uint8), kind


def packshots(
    count: int = 300, seed: int = 0, side: int = 800, overlit: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for i in range(count):
        jpeg, mask, _ = packshot(seed * 100_000 + i, side, overlit)
        yield np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")), mask


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--side", type=int, default=800)
    ap.add_argument("--overlit", action="store_true", help="the sweep lit above the product, clipped to 255")
    args = ap.parse_args()
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    (args.out / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(args.count):
        jpeg, mask, kind = packshot(args.seed * 100_000 + i, args.side, args.overlit)
        name = f"{i:04d}-{kind}"
        (args.out / "images" / f"{name}.jpg").write_bytes(jpeg)
        Image.fromarray(mask).save(args.out / "masks" / f"{name}.png")
    print(f"wrote {args.count} packshots to {args.out}")


if __name__ == "__main__":
    main()
