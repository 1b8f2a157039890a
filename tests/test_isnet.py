"""IS-Net in the engine: reference names, ONNX import exact against onnxruntime, the onnxruntime backend."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from unet_matting.engine.blocks import fold_batchnorms, is_folded
from unet_matting.engine.errors import ModelError
from unet_matting.engine.isnet import ISNET_TINY, ISNetDIS
from unet_matting.engine.networks import ModelInfo, build, import_onnx, load_network
from unet_matting.engine.session import Session
from unet_matting.engine.settings import EngineSettings

OFFICIAL_KEYS = [  # from the DIS repository's isnet.py / isnet-general-use.pth
    "conv_in.weight",
    "conv_in.bias",
    "stage1.rebnconvin.conv_s1.weight",
    "stage1.rebnconv7.bn_s1.running_var",
    "stage5.rebnconv4.conv_s1.weight",
    "stage5d.rebnconv3d.bn_s1.weight",
    "stage1d.rebnconv1d.conv_s1.bias",
    "side1.weight",
    "side6.bias",
]


def randomised(net: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and batch-norm statistics, so folding has something to fold."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return net.eval()


def export(net: nn.Module, path: Path, size: int, names: bool = True) -> Path:
    """Export the way the public builds were made: batch norms folded, every map through a sigmoid."""

    class Probabilities(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return tuple(torch.sigmoid(m) for m in self.net(x))

    torch.onnx.export(
        Probabilities().eval(),
        (torch.zeros(1, 3, size, size),),
        str(path),
        input_names=["input"],
        output_names=["output"],
        opset_version=17,
        dynamo=False,
    )
    if not names:
        model = onnx.load(str(path))
        for node in model.graph.node:
            node.name = ""
        onnx.save(model, str(path))
    return path


def onnxruntime_matte(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def engine_matte(net: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return torch.sigmoid(net(torch.from_numpy(x))[0]).numpy()


def test_state_dict_uses_reference_names() -> None:
    """Keys follow the DIS implementation (no fusion conv), so isnet-general-use.pth loads strictly."""
    keys = set(ISNetDIS().state_dict())
    assert set(OFFICIAL_KEYS) <= keys
    assert not any(k.startswith("outconv") for k in keys)


def test_folded_parameter_count_matches_public_build() -> None:
    """Folded, the network has the 44,017,990 parameters of the public IS-Net ONNX (88 MB in fp16)."""
    net = fold_batchnorms(ISNetDIS())
    assert is_folded(net)
    assert sum(p.numel() for p in net.parameters()) == 44_017_990


@pytest.mark.parametrize("size", [(64, 64), (96, 160)])
def test_forward_gives_six_maps_at_input_size(size: tuple[int, int]) -> None:
    """Six logit maps at the input size, side 1 (the matte) first; any multiple of 32 works."""
    with torch.inference_mode():
        maps = ISNetDIS(ISNET_TINY).eval()(torch.randn(2, 3, *size))
    assert len(maps) == 6 and all(m.shape == (2, 1, *size) for m in maps)


def test_folding_keeps_the_function() -> None:
    """Folding batch norms into convolutions changes the output by float rounding only."""
    net = randomised(ISNetDIS(ISNET_TINY))
    x = np.random.default_rng(1).uniform(-0.5, 0.5, (1, 3, 96, 96)).astype(np.float32)
    before = engine_matte(net, x)
    assert np.abs(engine_matte(fold_batchnorms(net), x) - before).max() < 1e-5


@pytest.mark.parametrize("names", [True, False], ids=["by-node-name", "by-graph-order"])
def test_onnx_import_equals_onnxruntime_at_1024(tmp_path: Path, names: bool) -> None:
    """A folded ONNX export, imported, gives onnxruntime's matte to 1e-3 at 1024 (names or order)."""
    net = randomised(ISNetDIS(ISNET_TINY), seed=3)
    path = export(net, tmp_path / "tiny.onnx", 1024, names=names)
    imported, info = import_onnx(path)
    assert info.arch == "isnet-tiny" and is_folded(imported)
    x = np.random.default_rng(2).uniform(-0.5, 0.5, (1, 3, 1024, 1024)).astype(np.float32)
    assert np.abs(engine_matte(imported, x) - onnxruntime_matte(path, x)).max() <= 1e-3


def test_u2net_onnx_imports_too(tmp_path: Path) -> None:
    """rembg-style U²-Net-P ONNX builds (folded, sigmoid outputs) come back as the engine's network."""
    net = randomised(build("u2netp"), seed=4)
    path = export(net, tmp_path / "u2netp.onnx", 320)
    imported, info = import_onnx(path)
    x = np.random.default_rng(3).uniform(-1, 1, (1, 3, 320, 320)).astype(np.float32)
    assert info.arch == "u2netp"
    assert np.abs(engine_matte(imported, x) - onnxruntime_matte(path, x)).max() <= 1e-3


def test_isnet_checkpoint_loads_strictly(tmp_path: Path) -> None:
    """An IS-Net state dict (fp16, as published builds often are) loads with its architecture detected."""
    net = randomised(ISNetDIS(ISNET_TINY), seed=5)
    torch.save(
        {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}, tmp_path / "isnet.pth"
    )
    loaded, info = load_network(tmp_path / "isnet.pth")
    assert info.arch == "isnet-tiny"
    x = np.random.default_rng(4).uniform(-0.5, 0.5, (1, 3, 64, 64)).astype(np.float32)
    assert np.abs(engine_matte(loaded, x) - engine_matte(net.half().float(), x)).max() < 1e-4


def test_onnx_that_is_no_u2net_is_refused_with_a_reason(tmp_path: Path) -> None:
    """An ONNX file of another network is refused by the importer with a message, not a crash."""
    path = export(nn.Sequential(nn.Conv2d(3, 1, 3, padding=1)), tmp_path / "other.onnx", 64)
    with pytest.raises(ModelError, match="not a U²-Net or IS-Net ONNX build"):
        import_onnx(path)
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelError, match="junk.onnx"):
        import_onnx(tmp_path / "junk.onnx")


def test_session_runs_an_imported_isnet_at_any_multiple_of_32(tmp_path: Path) -> None:
    """The session resizes to its input size, runs IS-Net, and returns an alpha at the photo's size."""
    path = export(randomised(ISNetDIS(ISNET_TINY), seed=6), tmp_path / "tiny-isnet.onnx", 128)
    session = Session.load(EngineSettings(path, device="cpu", threads=1, input_size=96))
    alpha = session.predict_alpha(np.full((50, 70, 3), 128, np.uint8))
    assert alpha.shape == (50, 70) and alpha.dtype == np.float32
    assert 0.0 <= alpha.min() <= alpha.max() <= 1.0
    assert session.info.arch == "isnet-tiny" and session.input_size == 96


class Bright(nn.Module):
    """A stand-in for BiRefNet: a single-input network the engine cannot rebuild, logits out."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            self.conv.bias.fill_(0.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.conv(x),)


def test_onnxruntime_backend_follows_the_catalogue(tmp_path: Path) -> None:
    """A catalogue model with the onnxruntime backend runs through it: normalised input, sigmoid of logits."""
    path = tmp_path / "birefnet-general.onnx"  # the catalogue's file name: onnxruntime, ImageNet, logits
    torch.onnx.export(
        Bright().eval(),
        (torch.zeros(1, 3, 64, 64),),
        str(path),
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}},
        opset_version=17,
        dynamo=False,
    )
    session = Session.load(EngineSettings(path, device="cpu", threads=1, input_size=64))
    assert session.info.arch == "onnxruntime"
    white, black = (session.predict_alpha(np.full((40, 40, 3), v, np.uint8)) for v in (255, 0))
    # white: sum of (1 - mean) / std over RGB = 6.9 -> sigmoid ~0.999; black: -6.3 -> ~0.002
    assert white.min() > 0.99 and black.max() < 0.01


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="fusing needs torch's oneDNN")
def test_fused_convolutions_and_relus_give_the_same_bits_in_bf16() -> None:
    """A folded IS-Net in bfloat16 with each block's convolution and ReLU fused gives the matte
    bit for bit; only blocks up to the fused dilation are fused (the 4F stages' wide ones keep two passes)."""
    from unet_matting.engine.blocks import FUSED_DILATION, ConvBnRelu, fuse_relus
    from unet_matting.engine.precision import cast_weights

    plain = cast_weights(fold_batchnorms(randomised(ISNetDIS(ISNET_TINY), seed=7)), "bf16")
    fused = fuse_relus(copy.deepcopy(plain))
    blocks = [m for m in fused.modules() if isinstance(m, ConvBnRelu)]
    assert all(b.fused == (max(b.conv_s1.dilation) <= FUSED_DILATION) for b in blocks)
    assert any(b.fused for b in blocks) and not all(b.fused for b in blocks)
    x = torch.from_numpy(np.random.default_rng(5).uniform(-1, 1, (1, 3, 160, 224)).astype(np.float32))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected, got = plain(x), fused(x)
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))


def test_residual_sums_add_in_place_at_inference_only() -> None:
    """At inference an RSU adds its input into its own output; with gradients on (training) it
    makes a new map, so the backward pass still has the ReLU's output. Both give the same values."""
    net = randomised(ISNetDIS(ISNET_TINY), seed=8)
    x = torch.from_numpy(np.random.default_rng(6).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32))
    with torch.inference_mode():
        in_place = net(x)[0]
    trained = net(x.clone().requires_grad_())
    sum(torch.sigmoid(m).mean() for m in trained).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters() if p.requires_grad)
    assert torch.equal(trained[0].detach(), in_place)


def test_a_session_computes_only_the_side_output_it_reads() -> None:
    """Training gets all six side outputs; a session's network returns the finest one only,
    bit for bit the first of the six."""
    net = randomised(ISNetDIS(ISNET_TINY), seed=9)
    x = torch.from_numpy(np.random.default_rng(7).uniform(-1, 1, (1, 3, 96, 64)).astype(np.float32))
    session = Session(net, ModelInfo("isnet-tiny.onnx", "0" * 12, "isnet"), torch.device("cpu"), 96, 1)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        finest = session.net(x)
        session.net.side_outputs = 6
        all_six = session.net(x)
    assert len(finest) == 1 and len(all_six) == 6
    assert torch.equal(finest[0], all_six[0])
