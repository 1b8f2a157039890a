"""Regenerate the golden product-like images and their exact masks (run from the repo root).

Three studio-style shots drawn procedurally (so they carry no third-party licence and are not
in the training set): a dark bottle on white, a red box with a cast shadow on a grey sweep,
a two-tone sneaker-like shape on beige. Masks are exact; shadows are not part of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).resolve().parent / "golden"
W, H = 320, 240


def sweep(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    t = np.linspace(0, 1, H)[:, None, None]
    arr = np.array(top) * (1 - t) + np.array(bottom) * t
    return Image.fromarray(np.broadcast_to(arr, (H, W, 3)).astype(np.uint8))


def shade(mask: Image.Image, colour: tuple[int, int, int], light: float = 0.35) -> Image.Image:
    """A flat colour with a left-to-right light falloff, like a studio key light."""
    x = np.linspace(1 + light, 1 - light, W)[None, :, None]
    arr = np.clip(np.array(colour)[None, None, :] * x, 0, 255)
    return Image.fromarray(np.broadcast_to(arr, (H, W, 3)).astype(np.uint8))


def compose(
    background: Image.Image,
    mask: Image.Image,
    colour: tuple[int, int, int],
    shadow_offset: tuple[int, int] | None = None,
) -> Image.Image:
    image = background.copy()
    if shadow_offset:
        shadow = Image.new("L", (W, H), 0)
        shadow.paste(mask.point(lambda v: v * 0.45), shadow_offset)
        image = Image.composite(
            Image.new("RGB", (W, H), (60, 60, 60)), image, shadow.filter(ImageFilter.GaussianBlur(6))
        )
    return Image.composite(shade(mask, colour), image, mask)


def draw(shapes) -> Image.Image:
    big = Image.new("L", (W * 4, H * 4), 0)
    d = ImageDraw.Draw(big)
    for kind, box, extra in shapes:
        box = [tuple(c * 4 for c in v) if isinstance(v, tuple) else v * 4 for v in box]
        getattr(d, kind)(box, fill=255, **extra)
    return big.resize((W, H), Image.LANCZOS)  # anti-aliased edges, like a real photo's


def main() -> None:
    OUT.mkdir(exist_ok=True)
    scenes = {
        "bottle": (
            sweep((250, 250, 250), (236, 236, 236)),
            (40, 70, 50),
            None,
            [
                ("rounded_rectangle", (130, 70, 190, 215), {"radius": 18}),
                ("rectangle", (148, 30, 172, 80), {}),
                ("rectangle", (144, 22, 176, 34), {}),
            ],
        ),
        "box": (
            sweep((215, 215, 220), (170, 170, 178)),
            (190, 30, 35),
            (10, 8),
            [("polygon", [(90, 90), (200, 70), (240, 110), (240, 190), (130, 210), (90, 170)], {})],
        ),
        "sneaker": (
            sweep((240, 228, 205), (225, 210, 185)),
            (30, 60, 140),
            (6, 6),
            [
                ("ellipse", (50, 110, 270, 190), {}),
                ("ellipse", (60, 80, 160, 160), {}),
                ("rectangle", (60, 150, 270, 185), {}),
            ],
        ),
    }
    for name, (background, colour, shadow, shapes) in scenes.items():
        mask = draw(shapes)
        compose(background, mask, colour, shadow).save(OUT / f"{name}.png")
        mask.save(OUT / f"{name}.mask.png")


if __name__ == "__main__":
    main()
