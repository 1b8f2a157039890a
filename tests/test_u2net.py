"""The U²-Net family architecture and checkpoint loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from unet_matting.engine.errors import ModelError
from unet_matting.engine.networks import load_network
from unet_matting.engine.u2net import build, detect_architecture

# Parameter counts of the published networks (u2net.pth: 176.3 MB fp32, u2netp.pth: 4.7 MB).
OFFICIAL_PARAMS = {"u2net": 44_009_869, "u2netp": 1_131_181}
OFFICIAL_KEYS = [
    "stage1.rebnconvin.conv_s1.weight",
    "stage1.rebnconv7.bn_s1.running_var",
    "stage1.rebnconv6d.conv_s1.bias",
    "stage5.rebnconv4.conv_s1.weight",
    "stage5d.rebnconv3d.bn_s1.num_batches_tracked",
    "stage1d.rebnconv1d.conv_s1.weight",
    "side1.weight",
    "side6.bias",
    "outconv.weight",
]


@pytest.mark.parametrize("arch", ["u2net", "u2netp"])
def test_parameter_count_matches_published_network(arch: str) -> None:
    """Both configurations have exactly the published number of parameters."""
    assert sum(p.numel() for p in build(arch).parameters()) == OFFICIAL_PARAMS[arch]


@pytest.mark.parametrize("arch", ["u2net", "u2netp"])
def test_state_dict_uses_reference_names(arch: str) -> None:
    """Keys follow the reference implementation, so official checkpoints load strictly."""
    keys = build(arch).state_dict().keys()
    assert set(OFFICIAL_KEYS) <= set(keys)
    assert len(keys) == 798


def test_dilated_stage_widths() -> None:
    """RSU-4F uses dilations 1, 2, 4, 8 and no pooling (checked on stage 5 of the full net)."""
    stage = build("u2net").stage5
    assert [getattr(stage, f"rebnconv{i}").conv_s1.dilation[0] for i in range(1, 5)] == [1, 2, 4, 8]
    assert stage.rebnconv1.conv_s1.out_channels == 256


@pytest.mark.parametrize("size", [(64, 64), (75, 133)])
def test_forward_returns_fused_and_six_sides_at_input_size(size: tuple[int, int]) -> None:
    """Seven logit maps come back at the input's size, also for sizes not divisible by 32."""
    net = build("u2netp").eval()
    with torch.inference_mode():
        outputs = net(torch.randn(2, 3, *size))
    assert len(outputs) == 7
    assert all(o.shape == (2, 1, *size) for o in outputs)


def test_detect_architecture_from_state_dict() -> None:
    """The deepest side output's width tells the full net from the small one."""
    assert detect_architecture(build("u2net").state_dict()) == "u2net"
    assert detect_architecture(build("u2netp").state_dict()) == "u2netp"


def test_fp16_and_wrapped_checkpoints_load(tmp_path: Path) -> None:
    """An fp16 state dict and a DataParallel-style 'module.' prefix both load with strict keys."""
    state = build("u2netp").state_dict()
    half = {f"module.{k}": v.half() if v.is_floating_point() else v for k, v in state.items()}
    torch.save(half, tmp_path / "half.pth")
    net, info = load_network(tmp_path / "half.pth")
    assert info.arch == "u2netp" and len(info.sha256) == 64
    assert next(net.parameters()).dtype == torch.float32


def test_missing_key_is_named(tmp_path: Path) -> None:
    """A checkpoint missing a key fails with the file and the first missing key in the message."""
    state = build("u2netp").state_dict()
    del state["stage3.rebnconv2.conv_s1.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ModelError, match=r"broken\.pth.*missing key 'stage3\.rebnconv2\.conv_s1\.weight'"):
        load_network(tmp_path / "broken.pth")


def test_unexpected_key_and_garbage_file(tmp_path: Path) -> None:
    """Extra keys and non-checkpoint files are refused with a clear message."""
    state = build("u2netp").state_dict()
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra.pth")
    with pytest.raises(ModelError, match="unexpected key 'extra.weight'"):
        load_network(tmp_path / "extra.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a loadable PyTorch checkpoint"):
        load_network(tmp_path / "junk.pth")
    with pytest.raises(ModelError, match="cannot read model file"):
        load_network(tmp_path / "absent.pth")
