"""``unet-matting preview``: a contact sheet (original | alpha | on checkerboard | on white)."""

from __future__ import annotations

import sys
from pathlib import Path

from unet_matting.engine.errors import ImageError
from unet_matting.engine.postprocess import cutout
from unet_matting.watcher.config import load_config
from unet_matting.watcher.models.active import load_session
from unet_matting.watcher.processing import sheet
from unet_matting.watcher.processing.imageio import decode
from unet_matting.watcher.processing.pipeline import read_source


def run_preview(config_path: Path, files: list[Path], out: Path, profile: str | None, model: Path | None) -> int:
    cfg = load_config(config_path)
    chosen = cfg.get_profile(profile)
    session = load_session(cfg.engine, model)
    rows, failed = [], 0
    for path in files:
        try:
            image = decode(read_source(path).data, cfg.engine.max_input_pixels)
        except (ImageError, OSError) as e:
            print(f"FAILED {path}: {e}", file=sys.stderr)
            failed += 1
            continue
        rgba = cutout(session.matte(image.rgb, chosen.see_through), image.rgb, chosen, image.alpha)
        rows.append(sheet.row(image.rgb, rgba, f"{path.name} [{chosen.name}]", white=True))
    if rows:
        out.parent.mkdir(parents=True, exist_ok=True)
        sheet.stack(rows).save(out)
        count = f"{len(rows)} image" + ("" if len(rows) == 1 else "s")
        print(f"contact sheet: {out} ({count}, model {session.info.label}, profile {chosen.name})")
    return 1 if failed or not rows else 0
