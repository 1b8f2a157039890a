"""What a shop-ready set costs: per-rendition timings at 12 MP and the shadows at 2000 px.

    .venv/bin/python -m bench.renditions [--runs 3] [--profiles shop_set marketplace_white ecom_product]

1. ``pipeline.render`` (the daemon's path, the shipped config's model and precision, one thread)
   on a generated 3000x4000 product JPEG, per profile: the median of each stage in ``timings_ms``
   (``encode.<rendition>`` is one file's encoding, checksum and rules) and each file's size;
   "outside inference" is what the issue counts (every stage but ``inference``), and "outside both
   passes" also leaves out the network call inside ``check`` (the gate's second opinion at
   ``CHECK_SIZE``: its input's resize and its forward pass), timed around that call;
2. ``shadow_layer`` + ``cast`` for each shadow kind on a 2000x2000 cut-out (the issue's
   budget: <= 50 ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from bench.common import REPO, product_jpeg
from unet_matting.engine.profile import Shadow
from unet_matting.engine.shadow import cast, shadow_layer
from unet_matting.watcher.config import load_config
from unet_matting.watcher.models.active import load_session
from unet_matting.watcher.processing.pipeline import render


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profiles", nargs="+", default=["shop_set", "marketplace_white", "ecom_product"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # the post-processing's filters too: one thread in all
    cfg = load_config(REPO / "etc/unet-matting.yaml")
    session = load_session(cfg.engine)
    second_opinion = _timed_check_pass(session)
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "product.jpg"
        product_jpeg(photo, 3000, 4000, seed=7)
        data = photo.read_bytes()
    print(f"12 MP product JPEG, {session.info.label}, precision {session.precision}, 1 thread")
    for name in args.profiles:
        profile = cfg.get_profile(name)
        runs = [render(data, session, profile, cfg.engine.max_input_pixels, cfg.output.png_compress_level, "p.jpg")]
        runs += [
            render(data, session, profile, cfg.engine.max_input_pixels, cfg.output.png_compress_level, "p.jpg")
            for _ in range(args.runs)
        ]
        runs = runs[1:]  # the first warms the allocator and the model's caches
        passes = second_opinion[-args.runs :]
        stages = {k: statistics.median(r.timings_ms[k] for r in runs) for k in runs[0].timings_ms}
        # the forward pass, the wait for it (none here: one caller) and the per-file parts of encode
        outside = sum(v for k, v in stages.items() if k not in ("inference", "queue") and not k.startswith("encode."))
        print(
            f"\n{name}: "
            + ", ".join(f"{k} {v:.0f}" for k, v in stages.items())
            + f" ms; outside inference {outside:.0f} ms"
            + (f", outside both passes {outside - statistics.median(passes):.0f} ms" if passes else "")
        )
        manifest = json.loads(runs[0].files[".json"])
        for file, entry in manifest["files"].items():
            took = stages.get(f"encode.{entry['rendition']}")
            print(
                f"  {file}: {entry['format']} {entry['width']}x{entry['height']}, {entry['bytes'] / 1e3:.0f} kB"
                + ("" if took is None else f", {took:.0f} ms")
            )
        if "validation" in manifest:
            print(f"  validation: {manifest['validation']}")
    rgba = np.zeros((2000, 2000, 4), np.uint8)
    yy, xx = np.mgrid[0:2000, 0:2000]
    bottle = ((xx - 1000) / 420) ** 2 + ((yy - 1000) / 900) ** 2 < 1
    rgba[bottle] = (180, 60, 40, 255)
    print("\nshadows at 2000x2000 (median of 20):")
    for kind in ("contact", "drop"):
        times = []
        for _ in range(20):
            started = time.perf_counter()
            cast(rgba, shadow_layer(rgba[..., 3], Shadow(kind)))
            times.append((time.perf_counter() - started) * 1000)
        print(f"  {kind}: {statistics.median(times):.1f} ms")


def _timed_check_pass(session) -> list[float]:
    """Milliseconds of each network call at the check size, appended as ``render`` makes them."""
    times: list[float] = []
    predict = session.predict_prepared

    def timed(x, height, width, size=None, waits=None):
        began = time.perf_counter()
        try:
            return predict(x, height, width, size=size, waits=waits)
        finally:
            if size is not None and size == session.check_size:
                times.append((time.perf_counter() - began) * 1000)

    session.predict_prepared = timed
    return times


if __name__ == "__main__":
    main()
