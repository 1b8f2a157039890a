"""The network's number format (``engine.precision``): which one runs, and the proof that it may.

- ``fp32``: everywhere; the reference.
- ``bf16``: on a CPU whose torch build reports bfloat16 matrix units (AMX tiles or AVX512-BF16),
  the network runs under ``torch.autocast`` in bfloat16, its convolutions' weights cast once at
  load (2x on the development VM's AVX512-BF16; emulated elsewhere, and slower, so ``auto`` does
  not pick it).
- ``fp16``: on CUDA (half-precision weights and activations, as before this setting existed).

``auto``: fp16 on CUDA, bf16 on a CPU with bf16 units, fp32 elsewhere; onnxruntime networks run in
fp32 whatever is asked. A session loading in another format than fp32 first runs a built-in test
image in fp32 and in the chosen format (``agreement``); if the mattes differ by more than
``MAX_DIFFERENCE`` anywhere, or more than ``MAX_FLIPPED`` of the pixels change side of 0.5, it
runs in fp32 and says so (``Session.precision_check``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

MAX_DIFFERENCE = 12 / 255  # largest |alpha difference| from fp32 on the test image
MAX_FLIPPED = 0.002  # share of the test image's pixels that may change side of 0.5


@dataclass(frozen=True)
class Check:
    """How the chosen format's matte of the test image compared with fp32's."""

    wanted: str  # what was asked for, resolved (e.g. bf16)
    used: str  # what runs: ``wanted``, or fp32 when the check failed
    max_difference: float
    mean_difference: float
    flipped: float  # share of pixels on the other side of 0.5

    @property
    def passed(self) -> bool:
        return self.used == self.wanted


BF16_UNITS = ("amx_bf16", "avx512_bf16")  # the CPU flags (Linux /proc/cpuinfo) of native bfloat16 maths


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (empty where the system does not list them)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bfloat16 here (torch's build) on native units (AMX or AVX512-BF16):
    without them torch emulates bf16 on AVX-512, slower than fp32."""
    try:
        built = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        built = False
    return built and bool(cpu_flags() & set(BF16_UNITS))


def resolve(choice: str, device: torch.device, runs_in_torch: bool) -> str:
    """The format ``choice`` (``engine.precision``) means on ``device``; ValueError for fp16 off CUDA."""
    if not runs_in_torch:
        return "fp32"  # onnxruntime runs the network in float32
    if choice == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_has_bf16() else "fp32"
    if choice == "fp16" and device.type != "cuda":
        raise ValueError("engine.precision fp16 runs on CUDA only; on this CPU use bf16 or fp32 (or auto)")
    return choice


def weights_dtype(precision: str) -> torch.dtype:
    """The dtype the input is kept in (bf16 keeps fp32 input and activations: autocast casts)."""
    return torch.float16 if precision == "fp16" else torch.float32


def cast_weights(net: torch.nn.Module, precision: str) -> torch.nn.Module:
    """``net`` (in place) with its weights in the format it runs in: all of them in fp16; in bf16
    those of its convolutions and linear layers, the ones ``torch.autocast`` casts to bfloat16 at
    every pass. The same values, cast once: the mattes are bit for bit autocast's (tests), and a
    pass no longer casts ~44 M weights first (IS-Net's 320 px pass: ~101 -> ~75 ms, one thread)."""
    if precision == "fp16":
        return net.to(dtype=torch.float16)
    if precision == "bf16":
        for module in net.modules():
            if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)):
                module.to(dtype=torch.bfloat16)
    return net


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def test_image(size: int) -> np.ndarray:
    """A product-like photo (size x size RGB): a shaded, printed box and a round bottle on a
    grey sweep with a soft shadow; deterministic, so every load checks the same pixels."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.empty((size, size, 3), np.float32)
    img[:] = (236 - 40 * yy)[..., None]
    shadow = np.exp(-(((xx - 0.45) / 0.3) ** 2 + ((yy - 0.86) / 0.05) ** 2))
    img *= (1 - 0.35 * shadow)[..., None]
    box = (np.abs(xx - 0.35) < 0.17) & (np.abs(yy - 0.55) < 0.3)
    img[box] = np.stack([200 - 60 * xx[box], 90 + 40 * yy[box], 60 + 0 * xx[box]], axis=-1)
    stripes = box & (np.sin(yy * 90) > 0.6)
    img[stripes] = (245, 240, 220)
    bottle = ((xx - 0.7) / 0.1) ** 2 + ((yy - 0.6) / 0.25) ** 2 < 1
    img[bottle] = np.stack([40 + 120 * xx[bottle], 70 + 0 * xx[bottle], 140 - 60 * yy[bottle]], axis=-1)
    rng = np.random.default_rng(0)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def agreement(wanted: str, reference: np.ndarray, candidate: np.ndarray) -> Check:
    """The check of ``candidate`` (the test image's matte in ``wanted``) against fp32's."""
    difference = np.abs(candidate - reference)
    flipped = float(np.mean((candidate > 0.5) != (reference > 0.5)))
    worst = float(difference.max())
    ok = worst <= MAX_DIFFERENCE and flipped <= MAX_FLIPPED
    return Check(wanted, wanted if ok else "fp32", worst, float(difference.mean()), flipped)
