"""Synthetic product-photo samples with exact alpha: cut-outs composited on backdrops.

Foregrounds: real RGBA cut-outs with soft alpha (icon themes, stamp sets: see fetch_data.sh)
and procedural objects (ellipses, polygons, rounded boxes, with holes) textured with photo
crops. Backgrounds: studio backdrops (flat, gradients, sweeps, noise) for at least half the
samples, photo crops for the rest. Augmented with drop/contact shadows that are *not* part of
the matte, colour jitter, blur, noise and JPEG artefacts. Never imported by the daemon.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


def _images(dirs: list[Path]) -> list[Path]:
    return sorted(p for d in dirs for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def load_cutouts(dirs: list[Path], min_side: int = 96, limit: int = 4000) -> list[Image.Image]:
    """RGBA images whose alpha really separates an object (some clear, some opaque pixels)."""
    found = []
    for path in _images(dirs):
        try:
            with Image.open(path) as im:
                if min(im.size) < min_side or im.mode not in ("RGBA", "LA", "P", "PA"):
                    continue
                rgba = im.convert("RGBA")
        except (OSError, ValueError):
            continue
        a = np.asarray(rgba)[..., 3]
        coverage = (a > 127).mean()
        if 0.08 < coverage < 0.92 and (a == 0).mean() > 0.05:
            rgba.thumbnail((384, 384))
            found.append(rgba)
        if len(found) >= limit:
            break
    return found


def load_photos(dirs: list[Path], limit: int = 400) -> list[Image.Image]:
    photos = []
    for path in _images(dirs)[:limit]:
        try:
            with Image.open(path) as im:
                im.draft("RGB", (640, 640))
                rgb = im.convert("RGB")
        except (OSError, ValueError):
            continue
        rgb.thumbnail((640, 640))
        if min(rgb.size) >= 128:
            photos.append(rgb)
    return photos


@dataclass
class SampleMaker:
    """Makes (RGB uint8 HxWx3, alpha float32 HxW) pairs of side ``size``; deterministic per seed."""

    cutouts: list[Image.Image]
    photos: list[Image.Image]
    size: int = 192

    def make(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = random.Random(seed)
        canvas = self._background(rng).convert("RGBA")
        matte = Image.new("L", canvas.size, 0)
        for _ in range(rng.choice((1, 1, 1, 1, 2, 3))):
            obj = self._object(rng)
            self._place(rng, canvas, matte, obj)
        rgb = self._degrade(rng, canvas.convert("RGB"))
        return np.asarray(rgb, np.uint8).copy(), np.asarray(matte, np.float32) / 255.0

    # -- backgrounds -------------------------------------------------------------------------
    def _background(self, rng: random.Random) -> Image.Image:
        s = self.size
        if self.photos and rng.random() < 0.45:
            return self._crop(rng, rng.choice(self.photos), s, s)
        kind = rng.choice(("flat", "flat", "gradient", "sweep", "noise"))
        base = np.array(self._colour(rng, studio=True), np.float32)
        if kind == "flat":
            arr = np.broadcast_to(base, (s, s, 3)).copy()
        else:
            other = np.array(self._colour(rng, studio=True), np.float32)
            t = np.linspace(0, 1, s, dtype=np.float32)
            if kind == "sweep":
                t = 1 / (1 + np.exp(-(t - rng.uniform(0.4, 0.8)) * rng.uniform(6, 20)))
            ramp = t[:, None, None] if rng.random() < 0.7 else t[None, :, None]
            arr = base + (other - base) * np.broadcast_to(ramp, (s, s, 1))
            if kind == "noise":
                arr = arr + np.random.default_rng(rng.randrange(1 << 30)).normal(0, 12, (s, s, 3))
        vignette = rng.uniform(0, 0.25)
        yy, xx = np.mgrid[-1:1:complex(s), -1:1:complex(s)]
        arr = arr * (1 - vignette * (xx**2 + yy**2)[..., None] / 2)
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))

    @staticmethod
    def _colour(rng: random.Random, studio: bool = False) -> tuple[int, int, int]:
        if studio and rng.random() < 0.6:
            v = rng.randint(170, 255)
            return (v, v, v) if rng.random() < 0.7 else tuple(min(255, v + rng.randint(-20, 20)) for _ in "rgb")
        return tuple(rng.randint(0, 255) for _ in "rgb")

    @staticmethod
    def _crop(rng: random.Random, photo: Image.Image, w: int, h: int) -> Image.Image:
        scale = rng.uniform(0.3, 1.0)
        cw, ch = max(8, int(photo.width * scale)), max(8, int(photo.height * scale))
        x, y = rng.randint(0, photo.width - cw), rng.randint(0, photo.height - ch)
        return photo.crop((x, y, x + cw, y + ch)).resize((w, h), Image.BILINEAR)

    # -- objects -----------------------------------------------------------------------------
    def _object(self, rng: random.Random) -> Image.Image:
        use_cutout = self.cutouts and rng.random() < 0.6
        obj = rng.choice(self.cutouts).copy() if use_cutout else self._procedural(rng)
        if rng.random() < 0.5:
            obj = obj.transpose(Image.FLIP_LEFT_RIGHT)
        if rng.random() < 0.3:
            obj = obj.rotate(rng.uniform(-30, 30), Image.BICUBIC, expand=True)
        rgb, alpha = obj.convert("RGB"), obj.getchannel("A")
        rgb = ImageEnhance.Color(rgb).enhance(rng.uniform(0.6, 1.4))
        rgb = ImageEnhance.Brightness(rgb).enhance(rng.uniform(0.75, 1.25))
        if rng.random() < 0.1:  # glass / semi-transparent product
            opacity = rng.uniform(0.4, 0.85)
            alpha = alpha.point(lambda v: int(v * opacity))
        rgb.putalpha(alpha)
        return rgb

    def _procedural(self, rng: random.Random) -> Image.Image:
        s = 256
        mask = Image.new("L", (s * 2, s * 2), 0)  # drawn at 2x, downsampled: anti-aliased edges
        draw = ImageDraw.Draw(mask)
        box = [rng.randint(0, s // 2), rng.randint(0, s // 2), rng.randint(s * 3 // 2, 2 * s),
               rng.randint(s * 3 // 2, 2 * s)]
        shape = rng.choice(("ellipse", "rounded", "polygon"))
        if shape == "ellipse":
            draw.ellipse(box, fill=255)
        elif shape == "rounded":
            draw.rounded_rectangle(box, radius=rng.randint(0, s // 2), fill=255)
        else:
            cx, cy = s, s
            pts = [(cx + rng.uniform(0.3, 1) * s * np.cos(a), cy + rng.uniform(0.3, 1) * s * np.sin(a))
                   for a in sorted(rng.uniform(0, 2 * np.pi) for _ in range(rng.randint(3, 9)))]
            draw.polygon(pts, fill=255)
        if rng.random() < 0.3:  # a hole (handles, rings, cut-outs)
            r = rng.randint(s // 8, s // 3)
            draw.ellipse([s - r, s - r, s + r, s + r], fill=0)
        if rng.random() < 0.3:  # a thin part (cable, strap, stem)
            draw.line([(rng.randint(0, 2 * s), 0), (rng.randint(0, 2 * s), 2 * s)], fill=255,
                      width=rng.randint(4, 16))
        mask = mask.resize((s, s), Image.LANCZOS)
        if self.photos and rng.random() < 0.6:
            tex = self._crop(rng, rng.choice(self.photos), s, s)
        else:
            tex = Image.new("RGB", (s, s), self._colour(rng))
            shade = Image.linear_gradient("L").resize((s, s)).rotate(rng.uniform(0, 360))
            tex = Image.composite(tex, Image.new("RGB", (s, s), (0, 0, 0)), shade.point(lambda v: 120 + v // 2))
        tex.putalpha(mask)
        return tex

    def _place(self, rng: random.Random, canvas: Image.Image, matte: Image.Image, obj: Image.Image) -> None:
        s = self.size
        scale = rng.uniform(0.35, 0.95) * s / max(obj.size)
        w, h = max(4, int(obj.width * scale)), max(4, int(obj.height * scale))
        obj = obj.resize((w, h), Image.LANCZOS)
        x = rng.randint(min(0, s - w), max(0, s - w))
        y = rng.randint(min(0, s - h), max(0, s - h))
        alpha = obj.getchannel("A")
        if rng.random() < 0.5:  # shadow: darkens the backdrop, stays out of the matte
            strength = rng.uniform(0.2, 0.6)
            shadow = Image.new("RGBA", (w, h), (0, 0, 0, 0))
            shadow.putalpha(alpha.filter(ImageFilter.GaussianBlur(rng.uniform(2, 10)))
                            .point(lambda v: int(v * strength)))
            canvas.alpha_composite(self._layer(shadow, (x + rng.randint(-6, 10), y + rng.randint(0, 14))))
        canvas.alpha_composite(self._layer(obj, (x, y)))
        layer = self._layer(obj, (x, y)).getchannel("A")
        matte.paste(Image.fromarray(np.maximum(np.asarray(matte), np.asarray(layer))))

    def _layer(self, im: Image.Image, offset: tuple[int, int]) -> Image.Image:
        """``im`` on a transparent canvas-sized layer; offsets may be negative (clipped)."""
        layer = Image.new("RGBA", (self.size, self.size), (0, 0, 0, 0))
        layer.paste(im, offset)
        return layer

    @staticmethod
    def _degrade(rng: random.Random, rgb: Image.Image) -> Image.Image:
        if rng.random() < 0.3:
            rgb = rgb.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
        if rng.random() < 0.4:
            arr = np.asarray(rgb, np.float32)
            arr = arr + np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(1, 6), arr.shape)
            rgb = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        if rng.random() < 0.6:
            buffer = io.BytesIO()
            rgb.save(buffer, "JPEG", quality=rng.randint(55, 95))
            rgb = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        return rgb
