"""Single-upload latency: upload complete -> PNG visible, through a running daemon.

    .venv/bin/python bench/latency.py [--model PATH] [--size 2000x3000] [--runs 5]

Starts ``unet-matting watch`` on a temporary tree, then drops product-like JPEGs one at a
time (written under a temp name and renamed, so "complete" is the rename instant) and waits for
each PNG. Reports wall time per upload, that time minus the configured quiet period (the part
the daemon controls), and the per-stage times from the ``job_finished`` log line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
PREFIX = "[UNET-MATTING] "


def product_jpeg(path: Path, width: int, height: int, seed: int) -> None:
    """A studio-like photo: textured object on a soft grey gradient, camera-like JPEG size."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    img[:] = (230 - 30 * yy / height)[..., None]
    inside = ((xx - width / 2) / (width * 0.3)) ** 2 + ((yy - height / 2) / (height * 0.35)) ** 2 < 1
    img[inside] = rng.uniform(30, 160, 3) + rng.normal(0, 12, (int(inside.sum()), 3))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "engine/weights/u2netp-products.pth")
    ap.add_argument("--size", default="2000x3000", help="WIDTHxHEIGHT")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quiet", type=float, default=0.5, help="watcher.quiet_period_s for the run")
    args = ap.parse_args()
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = REPO / "etc/unet-matting.yaml"
        cfg = yaml.safe_load(config.read_text())
        cfg["paths"] = {k: str(root / k) for k in ("incoming", "output", "archive", "failed", "state")}
        cfg["logging"] = {"file": str(root / "daemon.log"), "level": "info", "console": False}
        cfg["watcher"]["quiet_period_s"] = args.quiet
        cfg["engine"]["model"] = str(args.model.resolve())
        cfg["profiles_file"] = str(REPO / "etc/profiles.yaml")
        (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        daemon = subprocess.Popen([sys.executable, "-m", "watcher", "watch", "--config", str(root / "cfg.yaml")],
                                  cwd=REPO, stderr=subprocess.DEVNULL)
        try:
            run(root, args, width, height)
        finally:
            daemon.terminate()
            daemon.wait(60)


def run(root: Path, args: argparse.Namespace, width: int, height: int) -> None:
    log = root / "daemon.log"
    while "daemon_ready" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.05)
    walls = []
    for i in range(args.runs + 1):  # the first upload warms caches and is not counted
        src = root / f"src-{i}.jpg"
        product_jpeg(src, width, height, i)
        os.rename(src, root / "incoming" / f".up-{i}.jpg")
        started = time.perf_counter()
        os.rename(root / "incoming" / f".up-{i}.jpg", root / "incoming" / f"p{i}.jpg")
        target = root / "output" / f"p{i}.png"
        while not target.exists():
            time.sleep(0.005)
        if i:
            walls.append(time.perf_counter() - started)
    time.sleep(0.3)
    lines = [json.loads(x.removeprefix(PREFIX)) for x in log.read_text().splitlines() if x.startswith(PREFIX)]
    jobs = [e for e in lines if e.get("event") == "job_finished"][1:]
    stages = {k: statistics.median(j["stages_ms"][k] for j in jobs) for k in jobs[0]["stages_ms"]}
    med = statistics.median(walls)
    print(f"{width}x{height} JPEG, {args.runs} uploads, model {jobs[0]['model']}, quiet period {args.quiet} s")
    print(f"upload complete -> PNG visible: median {med:.2f} s (min {min(walls):.2f}, max {max(walls):.2f})")
    print(f"minus quiet period: median {med - args.quiet:.2f} s")
    print(f"job duration median {statistics.median(j['duration_ms'] for j in jobs):.0f} ms; stages (median ms): "
          + ", ".join(f"{k} {v:.0f}" for k, v in stages.items()))


if __name__ == "__main__":
    main()
