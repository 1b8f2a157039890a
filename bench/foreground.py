"""Foreground colour on thin, faint alpha (issue 21, item 5): hair and fur without the backdrop.

    .venv/bin/python -m bench.foreground [--count 12] [--sheet docs/hair-fringe.png]

Alphamatting-style cases built here with everything known: a foreground F (a furry body with
strands: brown, blonde, grey, black) with exact coverage alpha (drawn at 3x, box-filtered), over
known backgrounds B (grass green, sky blue, both textured). The photo is I = a F + (1 - a) B.
Each estimator turns (I, a) into F'; the score is the colour error a shop sees when the cut-out
is put on another page N: mean |a F' + (1 - a) N - (a F + (1 - a) N)| = mean a |F' - F| over the
soft pixels (0 < a < 1), in 8-bit levels, also for the faint ones (a < 0.5) alone, and the mean
of F' - F in the backdrop's direction (the fringe's tint). Lower is better; 'none' keeps I.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from unet_matting.engine import foreground
from unet_matting.engine.foreground import estimate_foreground

SUPER = 3
BACKGROUNDS = {"green": (70, 150, 40), "blue": (40, 110, 220)}
FURS = [(110, 70, 40), (215, 185, 120), (150, 150, 150), (35, 30, 28)]


def _texture(shape: tuple[int, int], rng: np.random.Generator, amount: float) -> np.ndarray:
    coarse = rng.normal(0, 1, (12, 12)).astype(np.float32)
    field = np.asarray(Image.fromarray(coarse, "F").resize(shape[::-1], Image.BICUBIC))
    return 1 + amount * field / (np.abs(field).max() + 1e-6)


def hair_case(seed: int, size: int = 320) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(F, B float 0..255 HxWx3, alpha HxW, background name) of one case."""
    rng = np.random.default_rng([5, seed])
    s = size * SUPER
    mask = Image.new("L", (s, s), 0)
    d = ImageDraw.Draw(mask)
    cx, cy, r = s / 2, s * 0.62, s * 0.28
    d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)  # the body
    for _ in range(int(rng.integers(120, 220))):  # strands leaving it, ~1 px wide at the photo's scale
        angle = rng.uniform(np.pi * 0.9, np.pi * 2.1)
        x0, y0 = cx + 0.9 * r * np.cos(angle), cy + 0.9 * r * np.sin(angle)
        length = r * rng.uniform(0.2, 0.7)
        bend = rng.uniform(-0.5, 0.5)
        points = []
        for t in np.linspace(0, 1, 8):
            a = angle + bend * t
            points.append((x0 + length * t * np.cos(a), y0 + length * t * np.sin(a)))
        d.line(points, fill=255, width=int(rng.integers(1, 4)))
    alpha = np.asarray(mask.resize((size, size), Image.BOX), np.float32) / 255
    fur = np.asarray(FURS[seed % len(FURS)], np.float32)
    fg = np.clip(fur[None, None] * _texture((size, size), rng, 0.25)[..., None], 0, 255)
    name = list(BACKGROUNDS)[seed % len(BACKGROUNDS)]
    bg = np.asarray(BACKGROUNDS[name], np.float32)[None, None] * _texture((size, size), rng, 0.35)[..., None]
    return fg, np.clip(bg, 0, 255), alpha, name


def errors(estimate: np.ndarray, fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> tuple[float, float, float]:
    """(mean a|F'-F| on soft pixels, the same on faint ones, tint towards the backdrop) in levels."""
    soft = (alpha > 0) & (alpha < 1)
    faint = soft & (alpha < 0.5)
    diff = estimate.astype(np.float32) - fg
    weighted = alpha[..., None] * np.abs(diff)
    direction = bg - fg
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True) + 1e-6
    tint = (diff * direction).sum(-1)
    return float(weighted[soft].mean()), float(weighted[faint].mean()), float(tint[soft].mean())


def _resized(x: np.ndarray, height: int, width: int) -> np.ndarray:
    if x.shape[:2] == (height, width):
        return x
    if x.ndim == 2:
        return np.asarray(Image.fromarray(np.ascontiguousarray(x), "F").resize((width, height), Image.BILINEAR))
    return np.stack([_resized(x[..., c], height, width) for c in range(x.shape[2])], axis=-1)


def multilevel(
    rgb: np.ndarray, alpha: np.ndarray, small: int = 32, small_sweeps: int = 10, sweeps: int = 2
) -> np.ndarray:
    """The reference: multi-level foreground estimation (Germer et al., ICPR 2020; pymatting's
    ``estimate_foreground_ml``), here in numpy with Jacobi sweeps. Per level, coarse to fine, each
    pixel's F and B minimise (a F + (1 - a) B - I)^2 plus their distance to the four neighbours'
    values, weighted 1e-5 + |a - a_neighbour|: a 2x2 system per pixel and channel."""
    image = rgb.astype(np.float32) / 255
    a_full = alpha.astype(np.float32)
    height, width = a_full.shape
    levels = int(np.ceil(np.log2(max(height, width, 2))))
    fg = image.mean(axis=(0, 1)).reshape(1, 1, 3)
    bg = fg.copy()
    shifts = ((slice(None, -2), slice(1, -1)), (slice(2, None), slice(1, -1)), (slice(1, -1), slice(None, -2)),
              (slice(1, -1), slice(2, None)))  # fmt: skip
    for level in range(levels + 1):
        h, w = max(1, round(height * 2.0 ** (level - levels))), max(1, round(width * 2.0 ** (level - levels)))
        i_l, a_l = _resized(image, h, w), _resized(a_full, h, w)
        fg, bg = _resized(fg, h, w), _resized(bg, h, w)
        padded = np.pad(a_l, 1, mode="edge")
        weights = [1e-5 + np.abs(a_l - padded[s]) for s in shifts]
        a = a_l[..., None]
        total = sum(weights)[..., None]
        a11, a12, a22 = a * a + total, a * (1 - a), (1 - a) ** 2 + total
        det = a11 * a22 - a12 * a12
        for _ in range(small_sweeps if max(h, w) <= small else sweeps):
            pf, pb = (np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge") for x in (fg, bg))
            b1 = a * i_l + sum(wt[..., None] * pf[s] for wt, s in zip(weights, shifts, strict=True))
            b2 = (1 - a) * i_l + sum(wt[..., None] * pb[s] for wt, s in zip(weights, shifts, strict=True))
            fg = np.clip((a22 * b1 - a12 * b2) / det, 0, 1).astype(np.float32)
            bg = np.clip((a11 * b2 - a12 * b1) / det, 0, 1).astype(np.float32)
    return np.rint(fg * 255).astype(np.uint8)


def linear_weights(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """estimate_foreground as it was: the paper's alpha-weighted means."""
    saved, foreground.WEIGHT_POWER = foreground.WEIGHT_POWER, 1
    try:
        return estimate_foreground(rgb, alpha)
    finally:
        foreground.WEIGHT_POWER = saved


ESTIMATORS = {
    "none": lambda rgb, alpha: rgb,
    "blur-fusion, alpha weights (before)": linear_weights,
    "blur-fusion, alpha^3 weights (now)": estimate_foreground,
    "multi-level (reference)": multilevel,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=12)
    ap.add_argument("--sheet", type=Path)
    args = ap.parse_args()
    totals = {name: [] for name in ESTIMATORS}
    rows = []
    for seed in range(args.count):
        fg, bg, alpha, name = hair_case(seed)
        image = np.rint(alpha[..., None] * fg + (1 - alpha[..., None]) * bg).astype(np.uint8)
        row = [image]
        for est, fn in ESTIMATORS.items():
            started = time.perf_counter()
            out = fn(image, alpha)
            totals[est].append((*errors(out, fg, bg, alpha), time.perf_counter() - started))
            page = np.full_like(fg, 255.0)
            row.append(np.rint(alpha[..., None] * out + (1 - alpha[..., None]) * page).astype(np.uint8))
        rows.append(np.concatenate(row, axis=1))
    print("| estimator | soft a|F'-F| | faint (a<0.5) | tint towards backdrop | ms / 320 px case |")
    print("|---|---|---|---|---|")
    for est, values in totals.items():
        m = np.mean(values, axis=0)
        print(f"| {est} | {m[0]:.2f} | {m[1]:.2f} | {m[2]:+.2f} | {m[3] * 1000:.0f} |")
    if args.sheet:
        Image.fromarray(np.concatenate(rows[:4], axis=0)).save(args.sheet, optimize=True)
        print(f"sheet: {args.sheet} (photo | " + " | ".join(ESTIMATORS) + ", each on white)")


if __name__ == "__main__":
    main()
