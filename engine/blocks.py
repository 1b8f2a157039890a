"""Building blocks of the U²-Net family (U²-Net, U²-Net-P, IS-Net): conv-bn-relu and the
residual U-block, with the reference implementation's attribute names; and batch-norm folding
for inference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBnRelu(nn.Module):
    """3x3 (dilated) convolution, batch norm, ReLU; attribute names as in the reference.

    ``fused`` (set by ``fuse_relus``, folded blocks only): the convolution and the ReLU run as
    one oneDNN primitive, the ReLU applied to the accumulators before they are stored.
    """

    fused = False

    def __init__(self, in_ch: int, out_ch: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv_s1 = nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation)
        self.bn_s1 = nn.BatchNorm2d(out_ch)
        self.relu_s1 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            c = self.conv_s1  # weight, bias, padding, stride, dilation, groups, then the pointwise op
            return _CONV_RELU(
                x.to(c.weight.dtype), c.weight, c.bias, c.padding, c.stride, c.dilation, 1, "relu", [], ""
            )
        return self.relu_s1(self.bn_s1(self.conv_s1(x)))


class RSU(nn.Module):
    """Residual U-block of ``height`` levels (RSU-7 ... RSU-4).

    With ``dilated=True`` it is RSU-4F: no pooling, dilations 1, 2, 4, 8 instead, for the
    low-resolution stages where pooling would lose too much.
    """

    def __init__(self, height: int, in_ch: int, mid_ch: int, out_ch: int, dilated: bool = False):
        super().__init__()
        if height < 3:
            raise ValueError(f"RSU height must be >= 3, got {height}")
        self.height = height
        self.dilated = dilated
        self.rebnconvin = ConvBnRelu(in_ch, out_ch)
        for level in range(1, height + 1):
            cin = out_ch if level == 1 else mid_ch
            setattr(self, f"rebnconv{level}", ConvBnRelu(cin, mid_ch, self._dilation(level)))
        for level in range(height - 1, 0, -1):
            cout = out_ch if level == 1 else mid_ch
            setattr(self, f"rebnconv{level}d", ConvBnRelu(2 * mid_ch, cout, self._dilation(level)))
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)

    def _dilation(self, level: int) -> int:
        if self.dilated:
            return 2 ** (level - 1)
        return 2 if level == self.height else 1

    def _pools_after(self, level: int) -> bool:
        return not self.dilated and level < self.height - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hxin = self.rebnconvin(x)
        skips: list[torch.Tensor] = []
        hx = hxin
        for level in range(1, self.height + 1):
            hx = getattr(self, f"rebnconv{level}")(hx)
            skips.append(hx)
            if self._pools_after(level):
                hx = self.pool(hx)
        hx = skips.pop()
        for level in range(self.height - 1, 0, -1):
            skip = skips.pop()
            if hx.shape[2:] != skip.shape[2:]:
                hx = upsample_like(hx, skip)
            hx = getattr(self, f"rebnconv{level}d")(torch.cat((hx, skip), 1))
        if torch.is_grad_enabled():  # training: the ReLU's backward needs its output as it was
            return hx + hxin
        return hx.add_(hxin)  # no new map of the stage's full size to allocate and fault in


def upsample_like(src: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of ``src`` to ``target``'s height and width (half-pixel centres)."""
    return F.interpolate(src, size=target.shape[2:], mode="bilinear", align_corners=False)


@torch.no_grad()
def fold_batchnorms(net: nn.Module) -> nn.Module:
    """Fold every ``ConvBnRelu``'s batch norm into its convolution (inference only, in place).

    The result computes the same function with one operation fewer per block, and has the
    parameter layout of ONNX exports, whose exporters fold batch norms the same way.
    """
    for block in net.modules():
        if isinstance(block, ConvBnRelu) and isinstance(block.bn_s1, nn.BatchNorm2d):
            bn, conv = block.bn_s1, block.conv_s1
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            conv.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
            block.bn_s1 = nn.Identity()
    return net


FUSED_DILATION = 2  # wider dilations (RSU-4F's, on maps of a few dozen pixels) keep two passes: fused,
# oneDNN picks another kernel for them, ~1e-7 off in bf16 (U²-Net-P at 768), for nothing measurable
_CONV_RELU = getattr(torch.ops.mkldnn, "_convolution_pointwise", None)  # torch's CPU builds with oneDNN


def fuse_relus(net: nn.Module) -> nn.Module:
    """``net`` (folded, in place) with each block's convolution and ReLU as one oneDNN pass on
    the CPU, without a separate pass over every activation map. In bfloat16 the bits are the
    same (the ReLU commutes with rounding to bf16; tests) and IS-Net's pass is 10-17 % faster
    (768, one thread: ~305 -> ~259 ms); in float32 it gains 2 % and moves the matte by
    ~1e-6, so sessions fuse in bf16 only. A no-op where torch has no oneDNN."""
    if _CONV_RELU is None or not torch.backends.mkldnn.is_available():
        return net
    for block in net.modules():
        if isinstance(block, ConvBnRelu) and isinstance(block.bn_s1, nn.Identity):
            block.fused = max(block.conv_s1.dilation) <= FUSED_DILATION
    return net


def is_folded(net: nn.Module) -> bool:
    """True when the network's blocks carry no batch norms (folded, or built from an ONNX file)."""
    return not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
