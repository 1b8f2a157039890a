"""A model session: weights loaded once onto a device, and the pure image -> alpha function."""

from __future__ import annotations

import hashlib
import io
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import ModelError
from engine.settings import EngineSettings
from engine.u2net import U2Net, build, detect_architecture

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelInfo:
    """What a log line says about the model: file name, short content hash, architecture."""

    name: str
    sha256: str
    arch: str

    @property
    def label(self) -> str:
        return f"{self.name}@{self.sha256[:12]}"


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


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """Load a checkpoint to CPU with ``weights_only=True``; return it and its SHA-256."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read model file {path}: {e.strerror or e}") from e
    digest = hashlib.sha256(data).hexdigest()
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several unrelated types for a bad file
        raise ModelError(f"{path}: not a loadable PyTorch checkpoint ({e.__class__.__name__})") from e
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"{path}: checkpoint holds a {type(state).__name__}, not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}, digest


def load_network(path: Path) -> tuple[U2Net, ModelInfo]:
    """Build the architecture the checkpoint describes and load it with strict keys."""
    state, digest = read_state_dict(path)
    try:
        arch = detect_architecture(state)
    except (KeyError, ValueError) as e:
        raise ModelError(f"{path}: not a U²-Net family checkpoint ({e})") from e
    net = build(arch)
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        first = f"missing key {missing[0]!r}" if missing else f"unexpected key {unexpected[0]!r}"
        raise ModelError(f"{path}: does not match {arch} ({first}; "
                         f"{len(missing)} missing, {len(unexpected)} unexpected)")
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            raise ModelError(f"{path}: {key} has shape {tuple(state[key].shape)}, "
                             f"{arch} expects {tuple(tensor.shape)}")
    net.load_state_dict(state, strict=True)
    return net.eval(), ModelInfo(path.name, digest, arch)


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

    def __init__(self, net: U2Net, info: ModelInfo, device: torch.device, input_size: int, max_batch: int,
                 path: Path | None = None):
        if input_size < 32 or input_size % 32:
            raise ValueError(f"input_size must be a positive multiple of 32, got {input_size}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.info = info
        self.path = path
        self.device = device
        self.input_size = input_size
        self.max_batch = max_batch
        self.dtype = torch.float16 if device.type == "cuda" else torch.float32
        self.net = net.to(device=device, dtype=self.dtype, memory_format=torch.channels_last)
        self._mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
        self._network = threading.Lock()  # held while a batch runs
        self._queue_lock = threading.Lock()
        self._queue: list[_Request] = []
        self.batch_counts: Counter[int] = Counter()  # batch size -> how many ran (tests, benchmarks)

    @classmethod
    def load(cls, settings: EngineSettings) -> Session:
        """Load weights, pick the device, set torch threads, and run one warm-up inference."""
        if settings.threads > 0:
            torch.set_num_threads(settings.threads)
        net, info = load_network(settings.model)
        device = resolve_device(settings.device)
        if device.type == "cuda" and settings.gpu_memory_fraction < 1.0:
            torch.cuda.set_per_process_memory_fraction(settings.gpu_memory_fraction, device)
        session = cls(net, info, device, settings.input_size, settings.max_batch, settings.model.resolve())
        session.predict_alpha(np.zeros((settings.input_size, settings.input_size, 3), np.uint8))
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
            probs = torch.sigmoid(self.net(x)[0].float())
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
        if not rgb.flags.writeable:  # torch.from_numpy wants a writable buffer
            rgb = rgb.copy()
        x = torch.from_numpy(rgb).to(self.device).permute(2, 0, 1).unsqueeze(0).float()
        size = (self.input_size, self.input_size)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = (x / 255.0 - self._mean) / self._std
        return x.to(dtype=self.dtype, memory_format=torch.channels_last)
