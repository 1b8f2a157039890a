"""Synthetic product-photo samples with exact alpha: cut-outs composited on backdrops.

Foregrounds: real RGBA cut-outs with soft alpha (icon themes, stamp sets: see fetch_data.sh)
and procedural objects (ellipses, polygons, rounded boxes, with holes) textured with photo
crops. Backgrounds: studio backdrops (flat, gradients, sweeps, noise) for at least half the
samples, photo crops for the rest. Augmented with drop/contact shadows that are *not* part of
the matte, colour jitter, blur, noise and JPEG artefacts.

Scenes (``scenes`` > 0, a share of the samples): the product stands on a surface that belongs to
the picture (a table or floor in perspective, textured with material photos, meeting a wall at a
horizon), with a contact shadow, sometimes a plate or pedestal under it, and smaller distractor
objects around and behind it (often out of focus) that are *not* in the matte. They teach what
plain composites cannot: a uniform wall, the table a product stands on and the clutter around it
are background. Never imported by the daemon.
"""

from __future__ import annotations

import io
import random
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}

# Where fetch_data.sh's Debian packages (and render.sh's renders) put the sources: the training
# script's defaults and the benchmark's synthetic holdouts, so the two always draw the same data.
OXYGEN = Path("/usr/share/icons/oxygen/base/256x256")
CUTOUTS = [OXYGEN / d for d in ("devices", "apps", "places", "mimetypes")] + [Path("/usr/share/tuxpaint/stamps")]
PHOTOS = [Path("/usr/share/backgrounds")]
TEXTURES = [Path("/usr/share/sweethome3d/furniture")]
PROPS = [Path("runs/renders")]  # training/render.sh, relative to the repository
PEOPLE = "Reallusion_*"  # the renders of the catalogue's people


def _images(dirs: list[Path], pattern: str = "*") -> list[Path]:
    return sorted(p for d in dirs for p in d.rglob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES)


def load_cutouts(
    dirs: list[Path], min_side: int = 96, limit: int = 4000, crop: bool = False, pattern: str = "*"
) -> list[Image.Image]:
    """RGBA images whose alpha really separates an object (some clear, some opaque pixels).

    ``crop``: cut each to its object's bounding box first (renders, whose framing leaves a tall
    person a thin strip of a square image) and keep any object at least 16 px thick."""
    found = []
    for path in _images(dirs, pattern):
        try:
            with Image.open(path) as im:
                if min(im.size) < min_side or im.mode not in ("RGBA", "LA", "P", "PA"):
                    continue
                rgba = im.convert("RGBA")
        except (OSError, ValueError):
            continue
        if crop:
            box = rgba.getchannel("A").point(lambda v: 255 if v > 8 else 0).getbbox()
            if box is None or min(box[2] - box[0], box[3] - box[1]) < 16:
                continue
            rgba = rgba.crop(box)
        a = np.asarray(rgba)[..., 3]
        coverage = (a > 127).mean()
        if crop and coverage > 0.08 or 0.08 < coverage < 0.92 and (a == 0).mean() > 0.05:
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


def load_textures(dirs: list[Path], min_side: int = 128, limit: int = 800) -> list[Image.Image]:
    """Surface textures (wood, stone, fabric, ...): JPEGs in ``dirs`` and inside the
    sweethome3d-furniture catalogues (``*.sh3f`` zip archives) found there, except the skin
    atlases of the Reallusion people (a face is no table top)."""
    found: list[Image.Image] = []

    def keep(source) -> None:
        try:
            with Image.open(source) as im:
                if min(im.size) >= min_side:
                    rgb = im.convert("RGB")
                    rgb.thumbnail((384, 384))
                    found.append(rgb)
        except (OSError, ValueError):
            pass

    for d in dirs:
        for archive_path in sorted(p for p in d.glob("*.sh3f") if p.stem != "Reallusion"):
            with zipfile.ZipFile(archive_path) as archive:
                for name in sorted(archive.namelist()):
                    if name.lower().endswith((".jpg", ".jpeg")) and len(found) < limit:
                        keep(io.BytesIO(archive.read(name)))
        for path in _images([d]):
            if path.suffix.lower() in (".jpg", ".jpeg") and len(found) < limit:
                keep(path)
    return found


@dataclass
class SampleMaker:
    """Makes (RGB uint8 HxWx3, alpha float32 HxW) pairs of side ``size``; deterministic per seed."""

    cutouts: list[Image.Image]
    photos: list[Image.Image]
    size: int = 192
    scenes: float = 0.0  # share of samples drawn as scenes (0: the plain composites only)
    props: list[Image.Image] = field(default_factory=list)  # rendered products: mains and distractors
    people: list[Image.Image] = field(default_factory=list)  # rendered people: scene mains
    textures: list[Image.Image] = field(default_factory=list)  # table / floor surfaces

    def make(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = random.Random(seed)
        if self.scenes and rng.random() < self.scenes:
            return self._scene(rng)
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
        yy, xx = np.mgrid[-1 : 1 : complex(s), -1 : 1 : complex(s)]
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
    def _object(self, rng: random.Random, pool: list[Image.Image] | None = None) -> Image.Image:
        pool = self.cutouts if pool is None else pool
        use_cutout = pool and rng.random() < 0.6
        obj = rng.choice(pool).copy() if use_cutout else self._procedural(rng)
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
        box = [
            rng.randint(0, s // 2),
            rng.randint(0, s // 2),
            rng.randint(s * 3 // 2, 2 * s),
            rng.randint(s * 3 // 2, 2 * s),
        ]
        shape = rng.choice(("ellipse", "rounded", "polygon"))
        if shape == "ellipse":
            draw.ellipse(box, fill=255)
        elif shape == "rounded":
            draw.rounded_rectangle(box, radius=rng.randint(0, s // 2), fill=255)
        else:
            cx, cy = s, s
            pts = [
                (cx + rng.uniform(0.3, 1) * s * np.cos(a), cy + rng.uniform(0.3, 1) * s * np.sin(a))
                for a in sorted(rng.uniform(0, 2 * np.pi) for _ in range(rng.randint(3, 9)))
            ]
            draw.polygon(pts, fill=255)
        if rng.random() < 0.3:  # a hole (handles, rings, cut-outs)
            r = rng.randint(s // 8, s // 3)
            draw.ellipse([s - r, s - r, s + r, s + r], fill=0)
        if rng.random() < 0.3:  # a thin part (cable, strap, stem)
            draw.line([(rng.randint(0, 2 * s), 0), (rng.randint(0, 2 * s), 2 * s)], fill=255, width=rng.randint(4, 16))
        mask = mask.resize((s, s), Image.LANCZOS)
        if self.photos and rng.random() < 0.6:
            tex = self._crop(rng, rng.choice(self.photos), s, s)
        else:
            tex = Image.new("RGB", (s, s), self._colour(rng))
            shade = Image.linear_gradient("L").resize((s, s)).rotate(rng.uniform(0, 360))
            tex = Image.composite(tex, Image.new("RGB", (s, s), (0, 0, 0)), shade.point(lambda v: 120 + v // 2))
        tex.putalpha(mask)
        return tex

    def _place(
        self,
        rng: random.Random,
        canvas: Image.Image,
        matte: Image.Image,
        obj: Image.Image,
        rel: float | None = None,
        floor: int | None = None,
        closeup: bool = False,
    ) -> None:
        """Composite ``obj`` (longest side ``rel`` x the canvas) and add it to the matte; with a
        ``floor`` (a horizon row) it stands on the surface below it, with a contact shadow; a
        ``closeup`` keeps its top near the top of the frame (a portrait, a bottle's neck)."""
        s = self.size
        obj = self._resized(obj, rng.uniform(0.35, 0.95) if rel is None else rel)
        w, h = obj.size
        x = rng.randint(min(0, s - w), max(0, s - w))
        y = rng.randint(min(0, s - h), max(0, s - h))  # drawn always: the trained scenes' sequence
        alpha = obj.getchannel("A")
        if closeup:
            y = rng.randint(min(0, (s - h) // 3), max(0, (s - h) // 3))
        elif floor is not None:
            y = self._stand(rng, canvas, alpha, x, floor)
        if rng.random() < 0.5:  # shadow: darkens the backdrop, stays out of the matte
            strength = rng.uniform(0.2, 0.6)
            shadow = Image.new("RGBA", (w, h), (0, 0, 0, 0))
            shadow.putalpha(
                alpha.filter(ImageFilter.GaussianBlur(rng.uniform(2, 10))).point(lambda v: int(v * strength))
            )
            canvas.alpha_composite(self._layer(shadow, (x + rng.randint(-6, 10), y + rng.randint(0, 14))))
        canvas.alpha_composite(self._layer(obj, (x, y)))
        layer = self._layer(obj, (x, y)).getchannel("A")
        matte.paste(Image.fromarray(np.maximum(np.asarray(matte), np.asarray(layer))))

    # -- scenes ------------------------------------------------------------------------------
    def _scene(self, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
        s = self.size
        canvas, floor = self._room(rng)
        matte = Image.new("L", canvas.size, 0)
        closeup = rng.random() < 0.2  # the product fills the frame and runs off its edges
        span = (0.9, 1.5) if closeup else (0.35, 0.9)
        mains = [(self._main(rng), rng.uniform(*span)) for _ in range(rng.choice((1, 1, 1, 2)))]
        smallest = min(rel for _, rel in mains)
        for _ in range(rng.choice((0, 1, 2, 2, 3, 4))):
            self._distractor(rng, canvas, rng.uniform(0.15, 0.7) * smallest, floor)
        for obj, rel in mains:
            self._place(rng, canvas, matte, obj, rel, floor, closeup)
        rgb = canvas.convert("RGB")
        if rng.random() < 0.5:  # the whole photo's exposure and white balance, product included
            gain = np.array([rng.uniform(0.85, 1.15) for _ in "rgb"], np.float32) * rng.uniform(0.8, 1.2)
            rgb = Image.fromarray(np.clip(np.asarray(rgb, np.float32) * gain, 0, 255).astype(np.uint8))
        rgb = self._degrade(rng, rgb)
        assert rgb.size == (s, s)
        return np.asarray(rgb, np.uint8).copy(), np.asarray(matte, np.float32) / 255.0

    def _main(self, rng: random.Random) -> Image.Image:
        pick = rng.random()
        if self.people and pick < 0.12:  # fashion shots: the product worn by a person
            return self._object(rng, self.people)
        if self.props and pick < 0.4:
            return self._object(rng, self.props)
        return self._object(rng)

    def _room(self, rng: random.Random) -> tuple[Image.Image, int | None]:
        """A backdrop and, mostly, a surface in perspective meeting it at a horizon row."""
        s = self.size
        surfaces = self.textures or self.photos
        if surfaces and rng.random() < 0.15:  # shot from above: the table top fills the frame
            canvas = self._crop(rng, rng.choice(surfaces), s, s)
            floor = None
        else:
            canvas = self._background(rng)
            floor = int(s * rng.uniform(0.3, 0.85)) if rng.random() < 0.8 else None
        if floor is not None:
            depth = s - floor
            if surfaces and rng.random() < 0.7:
                tex = self._crop(rng, rng.choice(surfaces), 2 * s, s)
                k = rng.uniform(0.1, 0.35)  # the far edge shows a wider stretch of the surface
                surface = tex.transform(
                    (s, depth), Image.QUAD, (0, 0, 2 * s * k, s, 2 * s * (1 - k), s, 2 * s, 0), Image.BILINEAR
                )
                if rng.random() < 0.4:  # a plain, lightly textured table
                    plain = Image.new("RGB", surface.size, self._colour(rng, studio=True))
                    surface = Image.blend(surface, plain, rng.uniform(0.5, 0.9))
            else:
                surface = Image.new("RGB", (s, depth), self._colour(rng, studio=rng.random() < 0.5))
            light = np.linspace(rng.uniform(0.7, 1.0), rng.uniform(0.9, 1.15), depth, dtype=np.float32)
            surface = Image.fromarray(
                np.clip(np.asarray(surface, np.float32) * light[:, None, None], 0, 255).astype(np.uint8)
            )
            canvas.paste(surface, (0, floor))
            if rng.random() < 0.5:  # the table's front edge or the skirting board
                edge = ImageDraw.Draw(canvas)
                edge.line([(0, floor), (s, floor)], fill=self._colour(rng), width=rng.randint(1, 3))
        if rng.random() < 0.4:  # depth of field: the backdrop out of focus
            canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5) * s / 160))
        return canvas.convert("RGBA"), floor

    def _distractor(self, rng: random.Random, canvas: Image.Image, rel: float, floor: int | None) -> None:
        """Another, smaller object in the picture that is not the product: not in the matte."""
        s = self.size
        pick = rng.random()
        obj = self._object(rng, self.props if self.props and pick < 0.5 else self.cutouts)
        obj = self._resized(obj, rel)
        w, h = obj.size
        x = rng.randint(-w // 2, s - w // 2)
        y = rng.randint(-h // 2, s - h // 2)
        if floor is not None and rng.random() < 0.7:
            y = self._stand(rng, canvas, obj.getchannel("A"), x, floor)
        if rng.random() < 0.5:  # out of focus: nearer or farther than the product
            obj = obj.filter(ImageFilter.GaussianBlur(rng.uniform(0.7, 3.0) * s / 160))
        canvas.alpha_composite(self._layer(obj, (x, y)))

    def _stand(self, rng: random.Random, canvas: Image.Image, alpha: Image.Image, x: int, floor: int) -> int:
        """Top row for an object standing on the surface below ``floor``; draws its contact
        shadow (and sometimes a plate or pedestal under it) onto the canvas, not the matte."""
        s = self.size
        box = alpha.getbbox() or (0, 0, alpha.width, alpha.height)
        base = rng.randint(min(floor + 2, s - 1), s + (box[3] - box[1]) // 6)
        cx, width = x + (box[0] + box[2]) / 2, box[2] - box[0]
        if rng.random() < 0.15:  # plate / pedestal, part of the scene
            pw = width * rng.uniform(0.6, 0.85)
            ph = pw * rng.uniform(0.15, 0.35)
            ImageDraw.Draw(canvas).ellipse(
                [cx - pw, base - ph, cx + pw, base + ph], fill=(*self._colour(rng, studio=True), 255)
            )
        shadow = Image.new("L", canvas.size, 0)
        sw, sh = width * rng.uniform(0.4, 0.6), max(2.0, width * rng.uniform(0.05, 0.15))
        ImageDraw.Draw(shadow).ellipse([cx - sw, base - sh, cx + sw, base + sh], fill=int(255 * rng.uniform(0.3, 0.8)))
        shadow = shadow.filter(ImageFilter.GaussianBlur(max(1.0, sh * rng.uniform(0.5, 1.5))))
        dark = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        dark.putalpha(shadow)
        canvas.alpha_composite(dark)
        return base - box[3]

    def _resized(self, obj: Image.Image, rel: float) -> Image.Image:
        """``obj`` scaled so its longest side is ``rel`` x the canvas (at least 4 px a side)."""
        scale = rel * self.size / max(obj.size)
        return obj.resize((max(4, int(obj.width * scale)), max(4, int(obj.height * scale))), Image.LANCZOS)

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
