"""Regenerate docs/shadow-sheet.png: does the product stand on the page?

    .venv/bin/python docs/make_shadow_sheet.py [PHOTO ...]

Runs the active model (IS-Net once `install.sh` pulled it) and `ecom_product`'s matte, then the
three shadow kinds of `engine/shadow.py` on a white page and on a light grey one: photo | none |
contact | drop (the shipped defaults: opacity 0.35, softness 2 %, offset 3 % at 60°). Default
photos: two products among U²-Net's demo images (Apache-2.0, see ../shared/data/eval/SOURCES.md);
the committed sheet adds two drawn packshots (`python -m bench.packshots /tmp/pack`: 0002-box, 0004-tube).
"""

from __future__ import annotations

import sys
from pathlib import Path

from unet_matting.engine.canvas import flatten
from unet_matting.engine.postprocess import cutout
from unet_matting.engine.profile import Shadow
from unet_matting.engine.shadow import cast, shadow_layer
from unet_matting.watcher.config import load_config
from unet_matting.watcher.models.active import load_session
from unet_matting.watcher.processing import sheet
from unet_matting.watcher.processing.imageio import decode

REPO = Path(__file__).resolve().parent.parent
EVAL = REPO.parent / "shared" / "data" / "eval"
DEFAULT_PHOTOS = [EVAL / "u2net-reference/images" / n for n in ("lamp2_meitu_1.jpg", "bike.jpg")]
PAGES = ((255, 255, 255), (236, 236, 232))


def main() -> None:
    photos = [Path(p) for p in sys.argv[1:]] or DEFAULT_PHOTOS
    cfg = load_config(REPO / "etc/unet-matting.yaml")
    session = load_session(cfg.engine)
    profile = cfg.get_profile("ecom_product")
    rows = []
    for photo in photos:
        image = decode(photo.read_bytes(), cfg.engine.max_input_pixels)
        alpha = session.complete(image.rgb, session.predict_alpha(image.rgb), profile.see_through)
        rgba = cutout(alpha, image.rgb, profile, image.alpha)
        for page in PAGES:
            tiles = [image.rgb]
            for kind in ("none", "contact", "drop"):
                shadowed = cast(rgba, shadow_layer(rgba[..., 3], Shadow(kind)))
                tiles.append(flatten(shadowed, page))
            rows.append(sheet.strip(tiles, f"{photo.name}: photo | none | contact | drop", height=300))
    out = REPO / "docs" / "shadow-sheet.png"
    sheet.stack(rows).save(out, optimize=True)
    print(f"wrote {out} with {session.info.label}")


if __name__ == "__main__":
    main()
