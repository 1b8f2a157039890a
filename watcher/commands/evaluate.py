"""``unet-matting evaluate``: per-image and mean MAE, IoU@0.5, boundary F against reference masks.

Per image, the matte the daemon would use (``engine.backdrop`` applied; a ``B`` marks the photos
whose studio backdrop changed it); at the end the means with and without the backdrop step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from unet_matting.engine.errors import ImageError, UnetMattingError
from unet_matting.engine.metrics import Scores, score
from unet_matting.engine.postprocess import compose_rgba, refine_alpha
from unet_matting.watcher.config import load_config
from unet_matting.watcher.models.active import load_session
from unet_matting.watcher.processing import sheet
from unet_matting.watcher.processing.imageio import decode

MASK_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def find_mask(masks: Path, stem: str) -> Path | None:
    return next((masks / f"{stem}{s}" for s in MASK_SUFFIXES if (masks / f"{stem}{s}").exists()), None)


def load_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    with Image.open(path) as im:
        mask = im.convert("L")
        if mask.size != size:
            raise ValueError(f"{path.name}: mask is {mask.size[0]}x{mask.size[1]}, image is {size[0]}x{size[1]}")
        return np.asarray(mask)


def _mean_line(label: str, scores: list[Scores]) -> None:
    mean = [float(np.mean([getattr(r, f) for r in scores])) for f in ("mae", "iou", "boundary_f")]
    print(f"{label:40s} {mean[0]:7.4f} {mean[1]:7.4f} {mean[2]:7.4f}")


def run_evaluate(
    config_path: Path,
    images: Path,
    masks: Path,
    model: Path | None,
    profile: str | None,
    sheet_path: Path | None,
    input_size: int | None,
) -> int:
    cfg = load_config(config_path)
    for flag, folder in (("--images", images), ("--masks", masks)):
        if not folder.is_dir():
            raise UnetMattingError(f"{flag} {folder} is not a directory")
    chosen = cfg.get_profile(profile or "default")
    session = load_session(cfg.engine, model, input_size)
    failed = 0
    results: list[Scores] = []
    network_only: list[Scores] = []
    changed = 0  # images whose studio backdrop changed the matte
    rows = []
    print(
        f"model {session.info.label} ({session.info.arch}), input {session.input_size}, profile {chosen.name}, "
        f"backdrop {session.backdrop}"
    )
    print(f"{'image':40s} {'MAE':>7s} {'IoU':>7s} {'BF@2px':>7s}")
    for path in sorted(p for p in images.iterdir() if p.is_file()):
        mask_path = find_mask(masks, path.stem)
        if mask_path is None:
            print(f"{path.name:40s} skipped: no mask named {path.stem}.*")
            continue
        try:
            image = decode(path.read_bytes(), cfg.engine.max_input_pixels)
            truth = load_mask(mask_path, image.size)
        except (ImageError, ValueError, OSError) as e:
            print(f"{path.name:40s} FAILED: {e}")
            failed += 1
            continue
        raw = session.predict_alpha(image.rgb)
        completed = session.complete(image.rgb, raw, chosen.see_through)
        alpha = refine_alpha(completed, chosen)
        s = score(alpha, truth)
        results.append(s)
        changed += completed is not raw
        network_only.append(s if completed is raw else score(refine_alpha(raw, chosen), truth))
        mark = "" if completed is raw else " B"
        print(f"{path.name:40s} {s.mae:7.4f} {s.iou:7.4f} {s.boundary_f:7.4f}{mark}")
        if sheet_path is not None:
            rows.append(sheet.row(image.rgb, compose_rgba(image.rgb, alpha), f"{path.name} IoU {s.iou:.2f}"))
    if not results:
        print("no image had a usable mask")
        return 1
    _mean_line(f"MEAN ({len(results)} images)", results)
    _mean_line(f"MEAN, backdrop off ({changed} changed)", network_only)
    if sheet_path is not None:
        sheet.stack(rows).save(sheet_path)
        print(f"contact sheet: {sheet_path}")
    if failed:
        print(f"{failed} image(s) could not be scored (FAILED above)")
    return 1 if failed else 0
