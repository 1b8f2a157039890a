"""A model session: weights loaded once onto a device, and the pure image -> alpha function."""

from __future__ import annotations

import copy
import re
import threading
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unet_matting.engine.backdrop import complete_matte
from unet_matting.engine.blocks import fold_batchnorms, fuse_relus
from unet_matting.engine.catalogue import Preprocessing, defaults_for, entry_for_file
from unet_matting.engine.confidence import CHECK_SIZE
from unet_matting.engine.errors import GpuMemoryError, ModelError
from unet_matting.engine.isnet import ISNetDIS
from unet_matting.engine.networks import ModelInfo, load_network
from unet_matting.engine.onnx_runtime import OnnxRuntimeNetwork
from unet_matting.engine.precision import Check, agreement, autocast, cast_weights, resolve, test_image, weights_dtype
from unet_matting.engine.settings import EngineSettings

RESIZE_BAND = 32  # rows of a photo narrowed at a time on the CPU (``_resize_in_bands``)


def release_cached_memory() -> None:
    """Give cached, unused GPU blocks back to the driver (once a swapped-out model is gone, or
    before a retry after running out of memory)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


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
    """One caller's network input, waiting to run in some caller's batch; ``queued`` and
    ``started`` (perf_counter seconds) are when it joined the queue and when its batch began."""

    __slots__ = ("x", "probs", "error", "done", "queued", "started")

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x
        self.probs: torch.Tensor | None = None
        self.error: BaseException | None = None
        self.done = False
        self.queued = time.perf_counter()
        self.started = self.queued


class Session:
    """A network on a device, ready to predict alpha mattes; build once, share between jobs.

    Thread-safe. Resizing in and out runs in the caller's thread; the network runs one batch at a
    time. Callers that arrive while a batch runs queue their inputs, and the next caller to take
    the network runs all queued inputs (up to ``max_batch``) as one batch, so concurrent workers
    share forward passes without anyone waiting for a timer.
    """

    def __init__(
        self,
        net: nn.Module | OnnxRuntimeNetwork,
        info: ModelInfo,
        device: torch.device,
        input_size: int,
        max_batch: int,
        path: Path | None = None,
        preprocessing: Preprocessing | None = None,
        flip_tta: bool = False,
        backdrop: str = "auto",
        precision: str | None = None,
    ):
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
        self.backdrop = backdrop
        if isinstance(net, nn.Module):  # precision None: fp16 on CUDA, fp32 on the CPU (no check)
            self.precision = precision or ("fp16" if device.type == "cuda" else "fp32")
            self.dtype = weights_dtype(self.precision)
            self.net = fold_batchnorms(net).to(device=device, dtype=self.dtype, memory_format=torch.channels_last)
            if isinstance(self.net, ISNetDIS):
                self.net.side_outputs = 1  # _forward reads the finest side output only
        else:  # onnxruntime runs on the CPU in float32
            self.precision, self.dtype, self.device = "fp32", torch.float32, torch.device("cpu")
            self.net = net
        self.precision_check: Check | None = None  # the load's proof of a format other than fp32
        self._logits = isinstance(net, nn.Module) or self.preprocessing.output == "logits"
        self._mean = torch.tensor(self.preprocessing.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.preprocessing.std, device=self.device).view(1, 3, 1, 1)
        self._network = threading.Lock()  # held while a batch runs
        self._queue_lock = threading.Lock()
        self._queue: list[_Request] = []
        self.batch_counts: Counter[int] = Counter()  # batch size -> how many ran (tests, benchmarks)

    @classmethod
    def load(cls, settings: EngineSettings) -> Session:
        """Load weights, pick the device, set torch's and OpenCV's threads, and run one warm-up inference.

        On CUDA the warm-up is the model's memory check: a network that cannot run one image
        within ``gpu_memory_fraction`` is a ``ModelError`` here, not a failed job later.
        """
        if settings.threads > 0:
            torch.set_num_threads(settings.threads)
            cv2.setNumThreads(settings.threads)  # OpenCV's filters and JPEG decoding alike
        if settings.model is None:
            raise ModelError("no model file chosen (engine.model: auto resolves to one before loading)")
        net, info, preprocessing = open_model(settings.model, settings.threads)
        device = resolve_device(settings.device)
        if device.type == "cuda" and settings.gpu_memory_fraction < 1.0:
            index = device.index if device.index is not None else torch.cuda.current_device()
            torch.cuda.set_per_process_memory_fraction(settings.gpu_memory_fraction, index)
        size = settings.input_size or preprocessing.size_on(device.type)
        try:
            wanted = resolve(settings.precision, device, isinstance(net, nn.Module))
        except ValueError as e:
            raise ModelError(str(e)) from None
        session = cls(
            net,
            info,
            device,
            size,
            settings.max_batch,
            settings.model.resolve(),
            preprocessing,
            settings.flip_tta,
            settings.backdrop,
            "fp32",  # the reference; the wanted format is checked against it below
        )
        try:
            session.predict_alpha(np.zeros((size, size, 3), np.uint8))
        except GpuMemoryError as e:
            raise ModelError(
                f"{settings.model.name} does not fit in the GPU memory this process may use "
                f"(engine.gpu_memory_fraction {settings.gpu_memory_fraction:g}): {e}"
            ) from None
        if wanted != "fp32":
            session._switch_precision(wanted)
        session.batch_counts.clear()
        return session

    def _switch_precision(self, wanted: str) -> None:
        """Run in ``wanted`` if its matte of the test image agrees with fp32's (``precision_check``)."""
        image = test_image(self.input_size)
        reference = self.predict_alpha(image)
        fp32_net = copy.deepcopy(self.net)  # the format casts the weights
        self.precision, self.dtype = wanted, weights_dtype(wanted)
        self.net = cast_weights(self.net, wanted)
        if wanted == "bf16":  # the CPU's: convolution and ReLU in one pass, the same bits (fuse_relus)
            fuse_relus(self.net)
        check = agreement(wanted, reference, self.predict_alpha(image))
        if not check.passed:
            self.precision, self.dtype = "fp32", torch.float32
            self.net = fp32_net
        self.precision_check = check

    @property
    def check_size(self) -> int | None:
        """The input side of the confidence score's second opinion (engine/confidence.py), or
        None: the network's own size is no larger, or it takes one input size only."""
        fixed = getattr(self.net, "fixed_size", None)
        if self.input_size <= CHECK_SIZE or (fixed is not None and fixed != (CHECK_SIZE, CHECK_SIZE)):
            return None
        return CHECK_SIZE

    def memory(self) -> dict[str, int] | None:
        """GPU memory of this process in bytes (allocated now, reserved by the cache, peak
        allocated since start), or None on the CPU."""
        if self.device.type != "cuda":
            return None
        return {
            "allocated": torch.cuda.memory_allocated(self.device),
            "reserved": torch.cuda.memory_reserved(self.device),
            "peak": torch.cuda.max_memory_allocated(self.device),
        }

    def matte(self, rgb: np.ndarray, see_through: bool = False) -> np.ndarray:
        """The matte a cut-out is made from: the network's, completed by the photo's studio
        backdrop when it has one and ``backdrop`` is ``auto`` (engine/backdrop.py); with
        ``see_through`` (the profile's), keyed against that backdrop too."""
        return self.complete(rgb, self.predict_alpha(rgb), see_through, overwrite=True)

    def complete(
        self, rgb: np.ndarray, alpha: np.ndarray, see_through: bool = False, overwrite: bool = False
    ) -> np.ndarray:
        """``alpha`` (this session's network matte of ``rgb``) completed per ``backdrop``; in
        place with ``overwrite`` (the caller has no further use for the network's matte)."""
        return complete_matte(rgb, alpha, self.backdrop, see_through, overwrite)

    def predict_alpha(
        self, rgb: np.ndarray, size: int | None = None, shape: tuple[int, int] | None = None
    ) -> np.ndarray:
        """The network's alpha matte in [0, 1] (float32, HxW) for an HxWx3 uint8 RGB image.

        ``size``: the network's input side for this call (default: the session's ``input_size``;
        a multiple of 32); ``shape``: the matte's (height, width) (default: the image's).
        """
        height, width = shape or rgb.shape[:2]
        return self.predict_prepared(self.prepare(rgb), height, width, size)

    def prepare(self, rgb: np.ndarray) -> torch.Tensor:
        """The network's input for an HxWx3 uint8 RGB image at ``input_size``; one photo's
        passes at several sizes start from it (``predict_prepared``), resized once from the photo."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected HxWx3 uint8, got {rgb.shape} {rgb.dtype}")
        with torch.inference_mode():
            return self._preprocess(rgb, self.input_size)

    def predict_prepared(
        self, x: torch.Tensor, height: int, width: int, size: int | None = None, waits: list[float] | None = None
    ) -> np.ndarray:
        """The matte (``height`` x ``width``) of a ``prepare``d input, the network run at ``size``
        (default: the input's own; a smaller one is resized from it). ``waits``: gets the seconds
        the input waited for the network (other callers' batches) appended, so a caller can tell
        that wait from the pass itself."""
        size = size or self.input_size
        if size < 32 or size % 32:
            raise ValueError(f"size must be a positive multiple of 32, got {size}")
        with torch.inference_mode():
            if size != x.shape[-1]:  # normalising is per channel and affine: it commutes with resizing
                x = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
                x = x.to(dtype=self.dtype, memory_format=torch.channels_last)
            request = _Request(x)
            with self._queue_lock:
                self._queue.append(request)
            while not request.done:
                with self._network:
                    if not request.done:
                        self._run_queued()
            if waits is not None:
                waits.append(request.started - request.queued)
            if request.error is not None:
                raise request.error
            return self._upscale(request.probs, height, width)

    def _run_queued(self) -> None:
        """Run up to ``max_batch`` queued inputs of the first one's size as one batch (caller
        holds ``_network``).

        A batch that runs out of GPU memory is run again one input at a time; an input that
        does not fit alone fails with ``GpuMemoryError`` (its caller's job fails, the process
        and the other inputs carry on).
        """
        with self._queue_lock:
            shape, batch, rest = self._queue[0].x.shape, [], []
            for r in self._queue:
                (batch if r.x.shape == shape and len(batch) < self.max_batch else rest).append(r)
            self._queue = rest
        started = time.perf_counter()
        for request in batch:
            request.started = started
        try:
            try:
                self._forward(batch)
            except torch.OutOfMemoryError:
                if len(batch) == 1:
                    raise
                release_cached_memory()
                for request in batch:
                    self._forward([request])
        except torch.OutOfMemoryError as exc:
            release_cached_memory()
            self._fail(batch, GpuMemoryError(f"out of GPU memory running the network: {_oom_detail(exc)}"))
        except BaseException as exc:  # every waiting caller gets the error, none hangs
            self._fail(batch, exc)
        finally:
            self.batch_counts[len(batch)] += 1
            for r in batch:
                r.done = True

    def _forward(self, batch: list[_Request]) -> None:
        x = torch.cat([r.x for r in batch]).contiguous(memory_format=torch.channels_last)
        if self.flip_tta:
            x = torch.cat([x, x.flip(3)])
        with autocast(self.precision, self.device):
            out = self.net(x)[0].float()
        probs = torch.sigmoid(out) if self._logits else out
        if self.flip_tta:
            probs = (probs[: len(batch)] + probs[len(batch) :].flip(3)) / 2
        for i, r in enumerate(batch):
            r.probs = probs[i : i + 1]

    @staticmethod
    def _fail(batch: list[_Request], exc: BaseException) -> None:
        for r in batch:
            if r.probs is None:
                r.error = exc

    def _upscale(self, probs: torch.Tensor, height: int, width: int) -> np.ndarray:
        """The network's matte at the image's size; on the CPU when the GPU has no room for it."""
        try:
            alpha = F.interpolate(probs, size=(height, width), mode="bilinear", align_corners=False)
        except torch.OutOfMemoryError:
            release_cached_memory()
            alpha = F.interpolate(probs.cpu(), size=(height, width), mode="bilinear", align_corners=False)
        return alpha[0, 0].clamp_(0, 1).cpu().numpy()

    def _preprocess(self, rgb: np.ndarray, size: int) -> torch.Tensor:
        """The network's input for one image: resized on the device (on the CPU when the GPU
        has no room for the full-size image), normalised, in the network's dtype."""
        if self.device.type == "cpu":
            x = _resize_in_bands(rgb, size)  # each band is copied: any strides will do
        else:
            if not rgb.flags.writeable or not rgb.flags.c_contiguous:  # torch.from_numpy: writable, positive strides
                rgb = np.array(rgb, order="C")  # a writable, contiguous copy
            image = torch.from_numpy(rgb)
            try:
                x = _resize(image.to(self.device), size)
            except torch.OutOfMemoryError:
                release_cached_memory()
                x = _resize(image, size).to(self.device)
        x = (x / 255.0 - self._mean) / self._std
        return x.to(dtype=self.dtype, memory_format=torch.channels_last)


def _resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """An HxWx3 uint8 image as a 1x3xSxS float tensor, antialiased bilinear (torch's own)."""
    x = image.permute(2, 0, 1).unsqueeze(0).float()
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _resize_in_bands(rgb: np.ndarray, size: int, rows: int = RESIZE_BAND) -> torch.Tensor:
    """``_resize`` on the CPU with the same bits, in ~55 % of the time on a 12 MP photo (151 -> 84 ms,
    one thread): torch's antialiased resize is separable, the width first, so the photo is
    narrowed a band of ``rows`` at a time (each band converted to float and to planes while it
    is in the cache, not the 144 MB float copy of the whole photo) and the bands' stack then
    shortened. Equality with ``_resize``: tests/test_session.py."""

    def shrunk(x: torch.Tensor, height: int) -> torch.Tensor:
        return F.interpolate(x, size=(height, size), mode="bilinear", align_corners=False, antialias=True)

    bands = []
    for top in range(0, rgb.shape[0], rows):
        band = torch.from_numpy(np.array(rgb[top : top + rows].transpose(2, 0, 1), order="C")).unsqueeze(0)
        bands.append(shrunk(band.float(), band.shape[2]))
    return shrunk(torch.cat(bands, dim=2), size)


def _oom_detail(exc: BaseException) -> str:
    """torch's out-of-memory message cut to what an operator needs: how much was asked for."""
    found = re.search(r"Tried to allocate [\d.]+ \w+", str(exc))
    return found.group(0).lower() if found else "no room left"
