"""IS-Net (``ISNetDIS``, Qin et al. 2022, "Highly Accurate Dichotomous Image Segmentation").

The segmentation network of the DIS project, with the module and parameter names of its
published checkpoints (``isnet-general-use.pth``), so they load with strict keys. It is the
U²-Net encoder-decoder behind a stride-2 input convolution, without the fusion convolution:
the first side output, upsampled to the input size, is the matte.

``forward`` returns six logit maps at the input size (side 1 first), like ``U2Net`` returns
its fused map first, so a session treats both alike. Any input side works; the published
weights were trained at 1024.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unet_matting.engine.blocks import RSU, upsample_like


@dataclass(frozen=True)
class ISNetSpec:
    """Channel widths of one IS-Net configuration: (height, in, mid, out, dilated) per stage."""

    name: str
    stem_ch: int
    encoder: tuple[tuple[int, int, int, int, bool], ...]
    decoder: tuple[tuple[int, int, int, int, bool], ...]


ISNET_DIS = ISNetSpec(
    "isnet", 64,
    encoder=((7, 64, 32, 64, False), (6, 64, 32, 128, False), (5, 128, 64, 256, False),
             (4, 256, 128, 512, False), (4, 512, 256, 512, True), (4, 512, 256, 512, True)),
    decoder=((4, 1024, 256, 512, True), (4, 1024, 128, 256, False), (5, 512, 64, 128, False),
             (6, 256, 32, 64, False), (7, 128, 16, 64, False)),
)  # fmt: skip
ISNET_TINY = ISNetSpec(
    "isnet-tiny",
    8,
    encoder=(
        (7, 8, 4, 8, False),
        (6, 8, 4, 8, False),
        (5, 8, 4, 8, False),
        (4, 8, 4, 8, False),
        (4, 8, 4, 8, True),
        (4, 8, 4, 8, True),
    ),
    decoder=(
        (4, 16, 4, 8, True),
        (4, 16, 4, 8, False),
        (5, 16, 4, 8, False),
        (6, 16, 4, 8, False),
        (7, 16, 4, 8, False),
    ),
)  # fmt: skip  (the same graph, narrow: tests export and import it in a second)


class ISNetDIS(nn.Module):
    """Stride-2 stem, six RSU encoder stages, five decoder stages, six side outputs."""

    def __init__(self, spec: ISNetSpec = ISNET_DIS, in_ch: int = 3, out_ch: int = 1) -> None:
        super().__init__()
        if len(spec.encoder) != 6 or len(spec.decoder) != 5:
            raise ValueError(f"{spec.name}: expected 6 encoder and 5 decoder stages")
        self.spec = spec
        self.conv_in = nn.Conv2d(in_ch, spec.stem_ch, 3, stride=2, padding=1)
        for i, stage in enumerate(spec.encoder, start=1):
            setattr(self, f"stage{i}", RSU(*stage))
        for i, stage in zip(range(5, 0, -1), spec.decoder, strict=True):
            setattr(self, f"stage{i}d", RSU(*stage))
        side_in = [stage[3] for stage in reversed(spec.decoder)] + [spec.encoder[-1][3]]
        for i, ch in enumerate(side_in, start=1):
            setattr(self, f"side{i}", nn.Conv2d(ch, out_ch, 3, padding=1))
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.side_outputs = len(side_in)  # how many side outputs forward returns, finest first
        # (training reads all six; a session reads only the first and sets 1: five side convolutions
        # and five upsamples to the input's size fewer per pass, the first output's bits unchanged)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        skips: list[torch.Tensor] = []
        hx = self.conv_in(x)
        for i in range(1, 7):
            hx = getattr(self, f"stage{i}")(hx)
            skips.append(hx)
            if i < 6:
                hx = self.pool(hx)
        decoded = [skips[5]]
        for i in range(5, 0, -1):
            skip = skips[i - 1]
            hx = getattr(self, f"stage{i}d")(torch.cat((upsample_like(hx, skip), skip), 1))
            decoded.append(hx)
        decoded.reverse()  # decoded[0] = stage1d ... decoded[5] = stage6
        return tuple(
            upsample_like(getattr(self, f"side{i + 1}")(d), x) for i, d in enumerate(decoded[: self.side_outputs])
        )


SPECS = {spec.name: spec for spec in (ISNET_DIS, ISNET_TINY)}


def is_isnet_state(state_dict: dict[str, torch.Tensor]) -> bool:
    """IS-Net checkpoints have a stem convolution and no fusion convolution."""
    return "conv_in.weight" in state_dict and "outconv.weight" not in state_dict


def spec_for(state_dict: dict[str, torch.Tensor]) -> ISNetSpec:
    """The configuration whose stem width matches the checkpoint's ``conv_in``."""
    width = int(state_dict["conv_in.weight"].shape[0])
    for spec in SPECS.values():
        if spec.stem_ch == width:
            return spec
    raise ValueError(
        f"conv_in.weight has {width} output channels; expected one of {sorted(s.stem_ch for s in SPECS.values())}"
    )
