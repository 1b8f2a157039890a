"""U²-Net family architecture (Qin et al. 2020), parameter names compatible with ``u2net.pth``.

The blocks live in ``engine.blocks``; this module assembles them. The module and
parameter names follow the published implementation, so its checkpoints load with strict keys.
``forward`` returns logits of the fused map and of the six side outputs: training applies the
loss to all seven (deep supervision), inference takes ``sigmoid`` of the first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unet_matting.engine.blocks import RSU, upsample_like


@dataclass(frozen=True)
class StageSpec:
    """One RSU stage: height, (in, mid, out) channels, dilated (the "F" variant)."""

    height: int
    in_ch: int
    mid_ch: int
    out_ch: int
    dilated: bool = False


@dataclass(frozen=True)
class U2NetSpec:
    """Encoder stages 1..6 and decoder stages 5d..1d of one U²-Net configuration."""

    name: str
    encoder: tuple[StageSpec, ...]
    decoder: tuple[StageSpec, ...]


def _spec(name: str, enc: list[tuple], dec: list[tuple]) -> U2NetSpec:
    return U2NetSpec(name, tuple(StageSpec(*s) for s in enc), tuple(StageSpec(*s) for s in dec))


U2NET_FULL = _spec(
    "u2net",
    [(7, 3, 32, 64), (6, 64, 32, 128), (5, 128, 64, 256), (4, 256, 128, 512),
     (4, 512, 256, 512, True), (4, 512, 256, 512, True)],
    [(4, 1024, 256, 512, True), (4, 1024, 128, 256), (5, 512, 64, 128), (6, 256, 32, 64),
     (7, 128, 16, 64)],
)  # fmt: skip
U2NET_SMALL = _spec(
    "u2netp",
    [(7, 3, 16, 64), (6, 64, 16, 64), (5, 64, 16, 64), (4, 64, 16, 64),
     (4, 64, 16, 64, True), (4, 64, 16, 64, True)],
    [(4, 128, 16, 64, True), (4, 128, 16, 64), (5, 128, 16, 64), (6, 128, 16, 64),
     (7, 128, 16, 64)],
)  # fmt: skip
SPECS = {spec.name: spec for spec in (U2NET_FULL, U2NET_SMALL)}


class U2Net(nn.Module):
    """Six-stage encoder, five-stage decoder, six side outputs fused by a 1x1 convolution."""

    def __init__(self, spec: U2NetSpec = U2NET_SMALL, out_ch: int = 1) -> None:
        super().__init__()
        if len(spec.encoder) != 6 or len(spec.decoder) != 5:
            raise ValueError(f"{spec.name}: expected 6 encoder and 5 decoder stages")
        self.spec = spec
        for i, s in enumerate(spec.encoder, start=1):
            setattr(self, f"stage{i}", RSU(s.height, s.in_ch, s.mid_ch, s.out_ch, s.dilated))
        for i, s in zip(range(5, 0, -1), spec.decoder, strict=True):
            setattr(self, f"stage{i}d", RSU(s.height, s.in_ch, s.mid_ch, s.out_ch, s.dilated))
        side_in = [s.out_ch for s in reversed(spec.decoder)] + [spec.encoder[-1].out_ch]
        for i, ch in enumerate(side_in, start=1):
            setattr(self, f"side{i}", nn.Conv2d(ch, out_ch, 3, padding=1))
        self.outconv = nn.Conv2d(6 * out_ch, out_ch, 1)
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        skips: list[torch.Tensor] = []
        hx = x
        for i in range(1, 7):
            hx = getattr(self, f"stage{i}")(hx)
            skips.append(hx)
            if i < 6:
                hx = self.pool(hx)
        decoded = [skips[5]]  # stage 6 output feeds side6 directly
        hx = skips[5]
        for i in range(5, 0, -1):
            skip = skips[i - 1]
            hx = getattr(self, f"stage{i}d")(torch.cat((upsample_like(hx, skip), skip), 1))
            decoded.append(hx)
        decoded.reverse()  # decoded[0] = stage1d ... decoded[5] = stage6
        sides = [getattr(self, f"side{i + 1}")(d) for i, d in enumerate(decoded)]
        sides = [sides[0]] + [upsample_like(s, sides[0]) for s in sides[1:]]
        fused = self.outconv(torch.cat(sides, 1))
        return (fused, *sides)


def build(name: str) -> U2Net:
    """Build an untrained network by configuration name (``u2net`` or ``u2netp``)."""
    try:
        return U2Net(SPECS[name])
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; expected one of {sorted(SPECS)}") from None


def detect_architecture(state_dict: dict[str, torch.Tensor]) -> str:
    """Tell ``u2net`` from ``u2netp`` by the width of the deepest side output."""
    weight = state_dict.get("side6.weight")
    if weight is None or weight.dim() != 4:
        raise KeyError("side6.weight")
    by_width = {spec.encoder[-1].out_ch: name for name, spec in SPECS.items()}
    width = int(weight.shape[1])
    if width not in by_width:
        raise ValueError(f"side6.weight has {width} input channels; expected one of {sorted(by_width)}")
    return by_width[width]
