"""How to build a session, and the engine's built-in defaults: torch-free, so the configuration
parser (and `check`, `status`, `--version`) can read the defaults without importing torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BACKDROP_MODES = ("auto", "off")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class EngineSettings:
    """How to build a session: weights file, device choice, threads, network input size."""

    model: Path | None = None  # the weights file; None until the caller has chosen one (engine.model: auto)
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # 0: leave torch's default
    input_size: int | None = None  # None: the model's own size (catalogue, or its architecture's default)
    gpu_memory_fraction: float = 1.0  # cap on this process's share of GPU memory
    max_batch: int = 4  # images of concurrent callers run through the network together
    flip_tta: bool = False  # also run the mirrored image and average: 2x the network time
    backdrop: str = "auto"  # auto: a studio backdrop completes the network's matte (engine/backdrop.py); off
    precision: str = "auto"  # auto: fp16 on CUDA, bf16 on a CPU with bf16 units, else fp32 (engine/precision.py)


DEFAULTS = EngineSettings()
