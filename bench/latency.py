"""Single-upload latency: upload complete -> PNG visible, through a running daemon.

    .venv/bin/python -m bench.latency [--model PATH] [--size 2000x3000] [--runs 5]

Starts ``unet-matting watch`` on a temporary tree, then drops product-like JPEGs one at a
time (written under a temp name and renamed, so "complete" is the rename instant) and waits for
each PNG. Reports wall time per upload, that time minus the configured quiet period (the part
the daemon controls), and the per-stage times from the ``job_finished`` log line.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import REPO, log_events, product_jpeg, start_daemon, write_config


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
        daemon = start_daemon(write_config(root, args.model, quiet_period_s=args.quiet))
        try:
            run(root, args, width, height)
        finally:
            daemon.terminate()
            daemon.wait(60)


def run(root: Path, args: argparse.Namespace, width: int, height: int) -> None:
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
    jobs = log_events(root / "daemon.log", "job_finished")[1:]
    stages = {k: statistics.median(j["stages_ms"][k] for j in jobs) for k in jobs[0]["stages_ms"]}
    med = statistics.median(walls)
    print(f"{width}x{height} JPEG, {args.runs} uploads, model {jobs[0]['model']}, quiet period {args.quiet} s")
    print(f"upload complete -> PNG visible: median {med:.2f} s (min {min(walls):.2f}, max {max(walls):.2f})")
    print(f"minus quiet period: median {med - args.quiet:.2f} s")
    print(
        f"job duration median {statistics.median(j['duration_ms'] for j in jobs):.0f} ms; stages (median ms): "
        + ", ".join(f"{k} {v:.0f}" for k, v in stages.items())
    )


if __name__ == "__main__":
    main()
