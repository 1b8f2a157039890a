"""Regenerate docs/ecom-sheet.png: what a shop sees on a coloured page, before and after the
opaque-body steps of `ecom_product`.

    .venv/bin/python docs/make_ecom_sheet.py [PHOTO ...]

Runs the active model (`engine.model: auto`: IS-Net once `install.sh` pulled it). Columns:
photo | `ecom_translucent` (the model's own alpha: what ecom_product did before) | `ecom_product`,
both on blue. Default photos: the six of ../shared/isnet-ecom-today.png (U²-Net demo images,
Apache-2.0, and COCO photos, CC BY, see ../shared/data/eval/SOURCES.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

from unet_matting.engine.canvas import flatten
from unet_matting.engine.postprocess import cutout
from unet_matting.watcher.config import load_config
from unet_matting.watcher.models.active import load_session
from unet_matting.watcher.processing import sheet
from unet_matting.watcher.processing.imageio import decode

REPO = Path(__file__).resolve().parent.parent
EVAL = REPO.parent / "shared" / "data" / "eval"
DEFAULT_PHOTOS = [EVAL / "u2net-reference/images" / n for n in ("lamp2_meitu_1.jpg", "im_14.jpg", "bike.jpg")] + [
    EVAL / "coco-ccby/images" / n for n in ("000000000073.jpg", "000000253956.jpg", "000000553664.jpg")
]


def main() -> None:
    photos = [Path(p) for p in sys.argv[1:]] or DEFAULT_PHOTOS
    cfg = load_config(REPO / "etc/unet-matting.yaml")
    session = load_session(cfg.engine)
    rows = []
    for photo in photos:
        image = decode(photo.read_bytes(), cfg.engine.max_input_pixels)
        network = session.predict_alpha(image.rgb)
        tiles = [image.rgb]
        for name in ("ecom_translucent", "ecom_product"):
            chosen = cfg.get_profile(name)
            alpha = session.complete(image.rgb, network, chosen.see_through)
            rgba = cutout(alpha, image.rgb, chosen, image.alpha)
            tiles.append(flatten(rgba, sheet.COLOURED_PAGE))
        rows.append(sheet.strip(tiles, f"{photo.name}: before | ecom_product"))
    out = REPO / "docs" / "ecom-sheet.png"
    sheet.stack(rows).save(out, optimize=True)
    print(f"wrote {out} with {session.info.label}")


if __name__ == "__main__":
    main()
