"""The imported network against onnxruntime on the same ONNX file: max abs difference of the matte.

    .venv/bin/python -m bench.onnx_exactness [--model var/models/isnet-general-use.onnx] [PHOTO ...]

Both get the same preprocessed 1024x1024 input (the catalogue's normalisation); the engine's
network runs in float32 with batch norms folded, onnxruntime runs the file as published (the npm
build computes in fp16 inside). Default photos: the U²-Net demo images in ../shared/data/eval.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from unet_matting.engine.networks import import_onnx
from unet_matting.engine.session import open_model
from unet_matting.watcher.processing.imageio import decode

REPO = Path(__file__).resolve().parent.parent
PHOTOS = sorted((REPO.parent / "shared/data/eval/u2net-reference/images").glob("*.jpg"))[:4]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "var/models/isnet-general-use.onnx")
    ap.add_argument("photos", nargs="*", type=Path, default=PHOTOS)
    args = ap.parse_args()
    _, _, pre = open_model(args.model)
    net, info = import_onnx(args.model)
    runtime = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    worst = 0.0
    for photo in args.photos:
        rgb = torch.from_numpy(decode(photo.read_bytes(), 100_000_000).rgb.copy()).permute(2, 0, 1)[None].float()
        x = torch.nn.functional.interpolate(rgb, size=(1024, 1024), mode="bilinear", antialias=True) / 255
        x = ((x - torch.tensor(pre.mean).view(1, 3, 1, 1)) / torch.tensor(pre.std).view(1, 3, 1, 1)).numpy()
        theirs = runtime.run(None, {runtime.get_inputs()[0].name: x})[0][:, :1]
        with torch.inference_mode():
            ours = torch.sigmoid(net(torch.from_numpy(x))[0]).numpy()
        diff = float(np.abs(ours - theirs).max())
        worst = max(worst, diff)
        print(f"{photo.name:28s} max abs difference {diff:.2e}")
    print(f"{info.label}: worst {worst:.2e} (target <= 1e-3)")


if __name__ == "__main__":
    main()
