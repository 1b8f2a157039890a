"""Export a U²-Net checkpoint to ONNX with sigmoid outputs, the layout rembg's sessions expect.

    .venv/bin/python -m unet_matting.engine.onnx_export WEIGHTS.pth OUT.onnx [--size 320]

Needs the optional ``onnx`` package (pip install onnx); the daemon never imports this module.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from unet_matting.engine.networks import load_network


class SigmoidOutputs(nn.Module):
    """The fused map and the six side maps as probabilities, like the reference network."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.sigmoid(o) for o in self.net(x))


def export(weights: Path, out: Path, size: int = 320) -> None:
    net, info = load_network(weights)
    model = SigmoidOutputs(net.float().eval())
    example = torch.zeros(1, 3, size, size)
    names = ["d0", "d1", "d2", "d3", "d4", "d5", "d6"]
    torch.onnx.export(
        model,
        (example,),
        str(out),
        input_names=["input.1"],
        output_names=names,
        dynamic_axes={"input.1": {0: "batch"}, **{n: {0: "batch"} for n in names}},
        opset_version=17,
        dynamo=False,
    )
    print(f"exported {info.label} ({info.arch}) to {out} ({out.stat().st_size / 1e6:.1f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--size", type=int, default=320)
    args = ap.parse_args()
    export(args.weights, args.out, args.size)


if __name__ == "__main__":
    main()
