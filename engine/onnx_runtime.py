"""Networks the engine cannot rebuild (BiRefNet, BRIA RMBG, any single-input matting ONNX),
run by onnxruntime behind the calling convention of the engine's own networks: a float tensor
batch in, a tuple whose first item is the 1-channel map out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from unet_matting.engine.errors import ModelError
from unet_matting.engine.networks import ModelInfo, file_digest


class OnnxRuntimeNetwork:
    """An onnxruntime session on the CPU; batches run item by item when the file fixes batch 1."""

    def __init__(self, session, info: ModelInfo) -> None:
        self.session = session
        self.info = info
        first = session.get_inputs()[0]
        self.input_name = first.name
        self.fixed_batch = isinstance(first.shape[0], int) and first.shape[0] == 1
        self.fixed_size = tuple(first.shape[2:]) if all(isinstance(d, int) for d in first.shape[2:]) else None

    @classmethod
    def load(cls, path: Path, threads: int = 0) -> OnnxRuntimeNetwork:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ModelError(
                "this model runs through onnxruntime, which is not installed (pip install onnxruntime)"
            ) from e
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ModelError(f"cannot read model file {path}: {e.strerror or e}") from e
        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own untyped errors for bad files
            raise ModelError(f"{path}: onnxruntime cannot load it ({e.__class__.__name__})") from e
        if len(session.get_inputs()) != 1:
            raise ModelError(f"{path}: expected a model with one image input, it has {len(session.get_inputs())}")
        return cls(session, ModelInfo(path.name, file_digest(data), "onnxruntime"))

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        batch = x.float().contiguous().cpu().numpy()
        if self.fixed_size is not None and batch.shape[2:] != self.fixed_size:
            raise ModelError(
                f"{self.info.name} only runs at {self.fixed_size[0]}x{self.fixed_size[1]}, "
                f"not {batch.shape[2]}x{batch.shape[3]}: set engine.input_size to match"
            )
        parts = [batch[i : i + 1] for i in range(len(batch))] if self.fixed_batch else [batch]
        maps = [self.session.run(None, {self.input_name: part})[0] for part in parts]
        out = np.concatenate(maps)[:, :1]
        return (torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)),)
