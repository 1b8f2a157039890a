"""Shared benchmark helpers: product-like test photos and a daemon on a temporary tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from unet_matting.watcher.logs import PREFIX

REPO = Path(__file__).resolve().parent.parent
SIZES = {"2mp": (1224, 1632), "6mp": (2000, 3000), "12mp": (3000, 4000)}


def product_jpeg(path: Path, width: int, height: int, seed: int) -> None:
    """A studio-like photo: textured object on a soft grey gradient, camera-like JPEG size."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    img[:] = (230 - 30 * yy / height)[..., None]
    inside = ((xx - width / 2) / (width * 0.3)) ** 2 + ((yy - height / 2) / (height * 0.35)) ** 2 < 1
    img[inside] = rng.uniform(30, 160, 3) + rng.normal(0, 12, (int(inside.sum()), 3))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)


def _product_jpeg(job: tuple[Path, int, int, int]) -> None:
    product_jpeg(*job)


def product_photos(folder: Path, width: int, height: int, count: int, distinct: int | None = None) -> Path:
    """``count`` product JPEGs ``p0000.jpg``... in a new ``folder``: ``distinct`` of them (default:
    all) generated in parallel, the rest copies (12 MP ones take ~1.4 s each to make)."""
    folder.mkdir(parents=True)
    distinct = min(distinct or count, count)
    with Pool(max(1, min(distinct, os.cpu_count() or 1))) as pool:
        pool.map(_product_jpeg, [(folder / f"p{i:04d}.jpg", width, height, i) for i in range(distinct)])
    for i in range(distinct, count):
        shutil.copyfile(folder / f"p{i % distinct:04d}.jpg", folder / f"p{i:04d}.jpg")
    return folder


def write_config(
    root: Path,
    model: Path,
    profile: str = "ecom_product",
    engine: dict | None = None,
    http: dict | None = None,
    **watcher: float,
) -> Path:
    """The shipped config on a temporary tree, with ``watcher.*``, ``engine.*`` and ``http.*`` overrides."""
    cfg = yaml.safe_load((REPO / "etc/unet-matting.yaml").read_text())
    cfg["paths"] = {k: str(root / k) for k in ("incoming", "output", "archive", "failed", "state")}
    cfg["logging"] = {"file": str(root / "daemon.log"), "level": "info", "console": False}
    cfg["watcher"].update(watcher)
    cfg["engine"]["model"] = str(model.resolve())
    cfg["engine"]["models_dir"] = None
    cfg["engine"].update(engine or {})
    cfg["http"].update(http or {})
    cfg["profiles_file"] = str(REPO / "etc/profiles.yaml")
    cfg["profile"], cfg["profiles_by_folder"] = profile, {}
    root.mkdir(parents=True, exist_ok=True)
    path = root / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start_daemon(config: Path) -> subprocess.Popen:
    log = Path(yaml.safe_load(config.read_text())["logging"]["file"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "unet_matting.watcher", "watch", "--config", str(config)],
        cwd=REPO,
        stderr=subprocess.DEVNULL,
    )
    while "daemon_ready" not in (log.read_text() if log.exists() else ""):
        if proc.poll() is not None:
            raise RuntimeError("daemon exited during start-up")
        time.sleep(0.05)
    return proc


def log_events(log: Path, event: str) -> list[dict]:
    lines = log.read_text().splitlines()
    return [
        e
        for e in (json.loads(x.removeprefix(PREFIX)) for x in lines if x.startswith(PREFIX))
        if e.get("event") == event
    ]
