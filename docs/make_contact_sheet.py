"""Regenerate docs/contact-sheet.png: one product through `default` and `ecom_product`.

    .venv/bin/python docs/make_contact_sheet.py [PHOTO ...]

Default photos: the red box of the golden test images (tests/data/golden, drawn by
tests/data/make_golden.py: a studio shot with a cast shadow) and the desk lamp from the U²-Net demo
images (../shared/data/eval/u2net-reference, Apache-2.0, github.com/xuebinqin/U-2-Net), a real
photo (the fallback model is visibly weak on it; the default IS-Net is not).
Columns: original | alpha | on checkerboard | on white.
"""

from __future__ import annotations

import sys
from pathlib import Path

from unet_matting.engine.postprocess import cutout
from unet_matting.watcher.config import load_config
from unet_matting.watcher.models.active import load_session
from unet_matting.watcher.processing import sheet
from unet_matting.watcher.processing.imageio import decode

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PHOTOS = [
    REPO / "tests/data/golden/box.png",
    REPO.parent / "shared/data/eval/u2net-reference/images/lamp2_meitu_1.jpg",
]


def main() -> None:
    photos = [Path(p) for p in sys.argv[1:]] or DEFAULT_PHOTOS
    cfg = load_config(REPO / "etc/unet-matting.yaml")
    session = load_session(cfg.engine)
    rows = []
    for photo in photos:
        image = decode(photo.read_bytes(), cfg.engine.max_input_pixels)
        alpha = session.predict_alpha(image.rgb)
        for name in ("default", "ecom_product"):
            rgba = cutout(alpha, image.rgb, cfg.get_profile(name), image.alpha)
            rows.append(sheet.row(image.rgb, rgba, f"{photo.name}: {name}", white=True))
    out = REPO / "docs" / "contact-sheet.png"
    sheet.stack(rows).save(out, optimize=True)
    print(f"wrote {out} with {session.info.label}")


if __name__ == "__main__":
    main()
