"""A model session: weights loaded once onto a device, and the pure image -> alpha function."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.blocks import fold_batchnorms
from engine.catalogue import Preprocessing, defaults_for, entry_for_file
from engine.errors import ModelError
from engine.networks import ModelInfo, load_network
from engine.onnx_runtime import OnnxRuntimeNetwork
from engine.settings import EngineSettings


def resolve_device(choice: str) -> torch.device:
    """Map ``auto|cpu|cuda`` to a torch device; ``cuda`` without a GPU is an error."""
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ModelError("engine.device is 'cuda' but torch sees no CUDA device")
        return torch.device("cuda")
    if choice != "auto":
        raise ModelError(f"unknown device {choice!r}; expected auto, cpu or cuda")
    return torch.device("cpu")


def open_model(path: Path, threads: int = 0) -> tuple[nn.Module | OnnxRuntimeNetwork, ModelInfo, Preprocessing]:
    """The network in a model file, its identity, and how it wants its input.

    The catalogue entry named by the file (if any) says which backend runs it and how to
    normalise; otherwise the architecture read off the file gives the defaults.
    """
    entry = entry_for_file(path)
    if entry is not None and entry.backend == "onnxruntime":
        net = OnnxRuntimeNetwork.load(path, threads)
        return net, net.info, entry.preprocessing
    net, info = load_network(path)
    return net, info, entry.preprocessing if entry is not None else defaults_for(info.arch)


class _Request:
    """One caller's network input, waiting to run in some caller's batch."""

    __slots__ = ("x", "probs", "error", "done")

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x
        self.probs: torch.Tensor | None = None
        self.error: BaseException | None = None
        self.done = False


class Session:
    """A network on a device, ready to predict alpha mattes; build once, share between jobs.

    Thread-safe. Resizing in and out runs in the caller's thread; the network runs one batch at a
    time. Callers that arrive while a batch runs queue their inputs, and the next caller to take
    the network runs all queued inputs (up to ``max_batch``) as one batch, so concurrent workers
    share forward passes without anyone waiting for a timer.
    """

    def __init__(self, net: nn.Module | OnnxRuntimeNetwork, info: ModelInfo, device: torch.device,
                 input_size: int, max_batch: int, path: Path | None = None,
                 preprocessing: Preprocessing | None = None, flip_tta: bool = False):
        if input_size < 32 or input_size % 32:
            raise ValueError(f"input_size must be a positive multiple of 32, got {input_size}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.info = info
        self.path = path
        self.device = device
        self.input_size = input_size
        self.max_batch = max_batch
        self.preprocessing = preprocessing or defaults_for(info.arch)
        self.flip_tta = flip_tta
        if isinstance(net, nn.Module):
            self.dtype = torch.float16 if device.type == "cuda" else torch.float32
            self.net = fold_batchnorms(net).to(device=device, dtype=self.dtype, memory_format=torch.channels_last)
        else:  # onnxruntime runs on the CPU in float32
            self.dtype, self.device = torch.float32, torch.device("cpu")
            self.net = net
        self._logits = isinstance(net, nn.Module) or self.preprocessing.output == "logits"
        self._mean = torch.tensor(self.preprocessing.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.preprocessing.std, device=self.device).view(1, 3, 1, 1)
        self._network = threading.Lock()  # held while a batch runs
        self._queue_lock = threading.Lock()
        self._queue: list[_Request] = []
        self.batch_counts: Counter[int] = Counter()  # batch size -> how many ran (tests, benchmarks)

    @classmethod
    def load(cls, settings: EngineSettings) -> Session:
        """Load weights, pick the device, set torch threads, and run one warm-up inference."""
        if settings.threads > 0:
            torch.set_num_threads(settings.threads)
        if settings.model is None:
            raise ModelError("no model file chosen (engine.model: auto resolves to one before loading)")
        net, info, preprocessing = open_model(settings.model, settings.threads)
        device = resolve_device(settings.device)
        if device.type == "cuda" and settings.gpu_memory_fraction < 1.0:
            torch.cuda.set_per_process_memory_fraction(settings.gpu_memory_fraction, device)
        size = settings.input_size or preprocessing.size_on(device.type)
        session = cls(net, info, device, size, settings.max_batch, settings.model.resolve(), preprocessing,
                      settings.flip_tta)
        session.predict_alpha(np.zeros((size, size, 3), np.uint8))
        session.batch_counts.clear()
        return session

    def predict_alpha(self, rgb: np.ndarray) -> np.ndarray:
        """Alpha matte in [0, 1] (float32, HxW) for an HxWx3 uint8 RGB image."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected HxWx3 uint8, got {rgb.shape} {rgb.dtype}")
        height, width = rgb.shape[:2]
        with torch.inference_mode():
            request = _Request(self._preprocess(rgb))
            with self._queue_lock:
                self._queue.append(request)
            while not request.done:
                with self._network:
                    if not request.done:
                        self._run_queued()
            if request.error is not None:
                raise request.error
            alpha = F.interpolate(request.probs, size=(height, width), mode="bilinear", align_corners=False)
            return alpha[0, 0].clamp_(0, 1).cpu().numpy()

    def _run_queued(self) -> None:
        """Run up to ``max_batch`` queued inputs as one batch (caller holds ``_network``)."""
        with self._queue_lock:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch:]
        try:
            x = torch.cat([r.x for r in batch]).contiguous(memory_format=torch.channels_last)
            if self.flip_tta:
                x = torch.cat([x, x.flip(3)])
            out = self.net(x)[0].float()
            probs = torch.sigmoid(out) if self._logits else out
            if self.flip_tta:
                probs = (probs[: len(batch)] + probs[len(batch):].flip(3)) / 2
            for i, r in enumerate(batch):
                r.probs = probs[i : i + 1]
        except BaseException as exc:  # every waiting caller gets the error, none hangs
            for r in batch:
                r.error = exc
        finally:
            self.batch_counts[len(batch)] += 1
            for r in batch:
                r.done = True

    def _preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        if not rgb.flags.writeable or not rgb.flags.c_contiguous:  # torch.from_numpy: writable, positive strides
            rgb = np.array(rgb, order="C")  # a writable, contiguous copy
        x = torch.from_numpy(rgb).to(self.device).permute(2, 0, 1).unsqueeze(0).float()
        size = (self.input_size, self.input_size)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = (x / 255.0 - self._mean) / self._std
        return x.to(dtype=self.dtype, memory_format=torch.channels_last)
