"""Quality of one or more weights files across network input sizes: the model card's table.

    .venv/bin/python -m bench.model_quality [--model PATH ...] [--sizes 640 768 1024] [--sets coco-ccby ...]

Default models: every catalogue model installed in the checkout's var/models, and the shipped
U²-Net-P; default size: each model's own (catalogue). The last column is CPU seconds per 2 MP
image (1224x1632: resize, network, resize back; median of 3, after a warm-up).

Sets: the golden product shots (tests/data/golden, exact masks), every set under
../shared/data/eval/ (real photos; see its SOURCES.md for what the masks are) and, when the
training sources are installed (training/fetch_data.sh), two synthetic holdouts drawn from
seeds no training run uses (HOLDOUT_SEED): the plain composites (`synthetic-holdout`) and the scenes
(`synthetic-scenes`: products on tables among distractors; drawn without the optional Blender
renders, so the set is the same on every machine), and `packshots`: 300 studio packshots with
exact alpha, mostly white products on white (bench/packshots.py, issue 21), and
`packshots-overlit`: 80 more with the sweep lit above the product, clipped to 255 (seed 8, the
usual pure-white packshot; the backdrop step must not turn its floor shadow into product). Scores
are of the matte before any profile (profile `default`), mean MAE / IoU@0.5 / boundary F@2px per set, two
rows per model and size: the network's matte (`backdrop off`) and the matte the daemon uses
(`backdrop auto`: completed by a studio backdrop where the photo has one, engine/backdrop.py).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from bench.packshots import packshots
from training.data import (
    CUTOUTS,
    OXYGEN,
    PHOTOS,
    TEXTURES,
    SampleMaker,
    load_cutouts,
    load_photos,
    load_textures,
)
from training.train import HOLDOUT_SEED
from unet_matting.engine.backdrop import complete_matte
from unet_matting.engine.catalogue import SHIPPED_MODEL
from unet_matting.engine.metrics import score
from unet_matting.engine.session import EngineSettings, Session
from unet_matting.watcher.commands.evaluate import find_mask, load_mask
from unet_matting.watcher.models.active import installed
from unet_matting.watcher.processing.imageio import decode

REPO = Path(__file__).resolve().parent.parent
EVAL = REPO.parent / "shared" / "data" / "eval"
GOLDEN = REPO / "tests" / "data" / "golden"
MAX_PIXELS = 100_000_000
OVERLIT_SEED = 8  # bench/packshots.py seed of the over-lit set (seeds 0 and 1: the plain sets)


def golden() -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for mask in sorted(GOLDEN.glob("*.mask.png")):
        rgb = np.asarray(Image.open(mask.with_name(mask.name.replace(".mask", ""))).convert("RGB"))
        yield rgb, np.asarray(Image.open(mask).convert("L"))


def photo_set(root: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for path in sorted((root / "images").iterdir()):
        mask = find_mask(root / "masks", path.stem)
        if mask is not None:
            image = decode(path.read_bytes(), MAX_PIXELS)
            yield image.rgb, load_mask(mask, image.size)


def holdout(scenes: float, count: int = 128, size: int = 160) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    textures = load_textures(TEXTURES) if scenes else []
    maker = SampleMaker(load_cutouts(CUTOUTS), load_photos(PHOTOS), size, scenes, textures=textures)
    for i in range(count):
        rgb, alpha = maker.make(HOLDOUT_SEED + i)
        yield rgb, np.round(alpha * 255).astype(np.uint8)


def default_models() -> list[Path]:
    models_dir = REPO / "var" / "models"
    return [models_dir / e.file for e in installed(models_dir)] + [SHIPPED_MODEL]


def seconds_per_2mp(session: Session) -> float:
    rgb = np.random.default_rng(0).integers(0, 255, (1632, 1224, 3), dtype=np.uint8)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        session.predict_alpha(rgb)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, nargs="+", default=default_models())
    ap.add_argument("--sizes", type=int, nargs="+", default=[None], help="input sides (default: the model's own)")
    ap.add_argument("--sets", nargs="+", help="only these sets (default: all)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--flip-tta", action="store_true", help="engine.flip_tta: average with the mirrored photo")
    ap.add_argument("--precisions", nargs="+", default=["fp32"], help="engine.precision values, one row each")
    args = ap.parse_args()

    sets: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"golden": list(golden())}
    roots = sorted(p for p in EVAL.iterdir() if (p / "images").is_dir()) if EVAL.is_dir() else []
    for root in roots:
        sets[root.name] = list(photo_set(root))
    sets["packshots"] = list(packshots())
    sets["packshots-overlit"] = list(packshots(80, OVERLIT_SEED, overlit=True))
    if OXYGEN.is_dir():
        sets["synthetic-holdout"] = list(holdout(0.0))
    if OXYGEN.is_dir() and TEXTURES[0].is_dir():
        sets["synthetic-scenes"] = list(holdout(1.0))
    if args.sets:
        sets = {k: v for k, v in sets.items() if k in args.sets}
    print(
        "| model | input | precision | backdrop | "
        + " | ".join(f"{n} ({len(v)}) MAE / IoU / BF" for n, v in sets.items())
        + " | CPU s / 2 MP |"
    )
    print("|---|---|---|---|" + "---|" * (len(sets) + 1))
    for model, size, precision in itertools.product(args.model, args.sizes, args.precisions):
        settings = EngineSettings(model, "cpu", args.threads, size, flip_tta=args.flip_tta, precision=precision)
        session = Session.load(settings)
        cells: dict[str, list[str]] = {"off": [], "auto": []}
        for pairs in sets.values():
            raw = [(rgb, session.predict_alpha(rgb), mask) for rgb, mask in pairs]
            for mode in cells:
                scores = [score(complete_matte(rgb, alpha, mode), mask) for rgb, alpha, mask in raw]
                cells[mode].append(
                    " / ".join(f"{np.mean([getattr(s, f) for s in scores]):.4f}" for f in ("mae", "iou", "boundary_f"))
                )
        seconds = seconds_per_2mp(session)
        for mode, row in cells.items():
            print(
                f"| {model.name}{' +flip' if args.flip_tta else ''} | {session.input_size} | "
                f"{session.precision} | {mode} | " + " | ".join(row) + f" | {seconds:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
