"""Before/after numbers for post-processing: PNG size and edge fringe.

    .venv/bin/python -m bench.profile_effects [PHOTO ...]

PNG size: the same matte written with and without ``clear_transparent`` and through the
``ecom_product`` profile. Edge fringe: a grey product on a green backdrop with a soft edge
(exact matte known), colour cast of the cut-out's edge pixels before and after decontamination.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from unet_matting.engine.foreground import estimate_foreground
from unet_matting.engine.postprocess import cutout
from unet_matting.watcher.config import load_config
from unet_matting.watcher.models.active import load_session
from unet_matting.watcher.processing.imageio import decode, encode_png

REPO = Path(__file__).resolve().parent.parent
LAMP = REPO.parent / "shared/data/eval/u2net-reference/images/lamp2_meitu_1.jpg"


def png_sizes(photos: list[Path]) -> None:
    cfg = load_config(REPO / "etc/unet-matting.yaml")
    session = load_session(cfg.engine)
    default = cfg.get_profile("default")
    for photo in photos:
        image = decode(photo.read_bytes(), cfg.engine.max_input_pixels)
        alpha = session.matte(image.rgb)
        for label, profile in [
            ("default, RGB kept under alpha 0", dataclasses.replace(default, clear_transparent=False)),
            ("default, RGB cleared under alpha 0", default),
            ("ecom_product", cfg.get_profile("ecom_product")),
        ]:
            start = time.perf_counter()
            png = encode_png(cutout(alpha, image.rgb, profile, image.alpha), 1)
            print(
                f"{photo.name} {image.size[0]}x{image.size[1]}: {label:36s} {len(png) / 1024:8.0f} KiB "
                f"({(time.perf_counter() - start) * 1000:.0f} ms post-process + encode)"
            )


def fringe() -> None:
    n = 1200
    yy, xx = np.mgrid[0:n, 0:n]
    alpha = np.clip((n * 0.3 - np.hypot(xx - n / 2, yy - n / 2)) / 5 + 0.5, 0, 1).astype(np.float32)
    grey, green = np.array([128, 128, 128], np.float32), np.array([20, 200, 40], np.float32)
    rgb = (alpha[..., None] * grey + (1 - alpha[..., None]) * green).round().astype(np.uint8)
    edge = (alpha > 0.02) & (alpha < 1)
    for label, colours in (("before", rgb), ("after decontamination", estimate_foreground(rgb, alpha))):
        px = colours[edge].astype(int)
        cast = px[:, 1] - (px[:, 0] + px[:, 2]) // 2
        print(
            f"green fringe {label:22s}: edge pixels' green excess mean {cast.mean():5.1f}, max {cast.max():3d} "
            f"(over {edge.sum()} px with 0 < alpha < 1)"
        )


if __name__ == "__main__":
    png_sizes([Path(p) for p in sys.argv[1:]] or [LAMP])
    fringe()
