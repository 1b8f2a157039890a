"""CPU (or CUDA) inference time of a model at its working resolution.

    .venv/bin/python bench/inference.py [--model PATH] [--input-size 160] [--threads N] [--runs 20]

Times ``Session.predict_alpha`` on a 2000x3000 photo-sized array (which includes the resize to
the network input and the upsampling of the matte) and the bare network forward pass.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from unet_matting.engine.session import EngineSettings, Session

REPO = Path(__file__).resolve().parent.parent


def timed(fn, runs: int) -> list[float]:
    fn()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "engine/weights/u2netp-products.pth")
    ap.add_argument("--input-size", type=int, default=160)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    session = Session.load(EngineSettings(args.model, args.device, args.threads, args.input_size))
    rgb = np.random.default_rng(0).integers(0, 255, (3000, 2000, 3), dtype=np.uint8)
    x = torch.zeros(1, 3, args.input_size, args.input_size, device=session.device, dtype=session.dtype)
    x = x.to(memory_format=torch.channels_last)

    def forward() -> None:
        with torch.inference_mode():
            session.net(x)
        if session.device.type == "cuda":
            torch.cuda.synchronize()

    net = timed(forward, args.runs)
    full = timed(lambda: session.predict_alpha(rgb), args.runs)
    print(
        f"model {session.info.label} ({session.info.arch}) on {session.device}, {torch.get_num_threads()} "
        f"threads, input {args.input_size}"
    )
    print(f"network forward: median {statistics.median(net) * 1000:.0f} ms (min {min(net) * 1000:.0f})")
    print(f"predict_alpha on 2000x3000: median {statistics.median(full) * 1000:.0f} ms (min {min(full) * 1000:.0f})")


if __name__ == "__main__":
    main()
