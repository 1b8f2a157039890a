"""Post-processing of a predicted alpha matte, driven by a profile; pure functions on arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Profile:
    """Knobs applied after the network, in this order: threshold, erosion, feathering.

    ``alpha_threshold``: alpha below it becomes 0 (removes faint background haze).
    ``erosion_kernel``: side of the square min-filter that pulls the edge inwards (0 = off).
    ``edge_feathering``: Gaussian sigma in pixels that softens the edge (0 = off).
    """

    name: str
    alpha_threshold: float = 0.0
    erosion_kernel: int = 0
    edge_feathering: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha_threshold < 1.0:
            raise ValueError(f"alpha_threshold must be in [0, 1), got {self.alpha_threshold}")
        if self.erosion_kernel < 0 or (self.erosion_kernel and self.erosion_kernel % 2 == 0):
            raise ValueError(f"erosion_kernel must be 0 or an odd size, got {self.erosion_kernel}")
        if not 0.0 <= self.edge_feathering <= 50.0:
            raise ValueError(f"edge_feathering must be in [0, 50], got {self.edge_feathering}")


def threshold(alpha: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Zero alpha below ``cutoff``."""
    return alpha.masked_fill(alpha < cutoff, 0.0) if cutoff > 0 else alpha


def erode(alpha: torch.Tensor, kernel: int) -> torch.Tensor:
    """Grey-level erosion (min filter) with a ``kernel`` x ``kernel`` square."""
    if kernel <= 1:
        return alpha
    return -F.max_pool2d(-alpha, kernel, stride=1, padding=kernel // 2)


def feather(alpha: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of the matte with standard deviation ``sigma`` pixels."""
    if sigma <= 0:
        return alpha
    radius = max(1, int(round(3 * sigma)))
    taps = torch.arange(-radius, radius + 1, dtype=alpha.dtype, device=alpha.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    padded = F.pad(alpha, (radius, radius, 0, 0), mode="replicate")
    alpha = F.conv2d(padded, kernel.view(1, 1, 1, -1))
    padded = F.pad(alpha, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(padded, kernel.view(1, 1, -1, 1))


def refine_alpha(alpha: np.ndarray, profile: Profile) -> np.ndarray:
    """Apply the profile's steps to an HxW float matte in [0, 1]; returns a new array."""
    with torch.inference_mode():
        t = torch.from_numpy(np.ascontiguousarray(alpha, dtype=np.float32))[None, None]
        t = threshold(t, profile.alpha_threshold)
        t = erode(t, profile.erosion_kernel)
        t = feather(t, profile.edge_feathering)
        return t[0, 0].clamp_(0, 1).numpy().copy()


def compose_rgba(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """RGBA uint8 from RGB uint8 and alpha in [0, 1]; fully transparent pixels carry RGB 0."""
    a8 = np.rint(alpha * 255.0).astype(np.uint8)
    rgba = np.empty((*rgb.shape[:2], 4), np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = a8
    rgba[a8 == 0, :3] = 0
    return rgba


def cutout(session_alpha: np.ndarray, rgb: np.ndarray, profile: Profile,
           input_alpha: np.ndarray | None = None) -> np.ndarray:
    """Refine a predicted matte, respect an input's own transparency, and compose RGBA."""
    alpha = refine_alpha(session_alpha, profile)
    if input_alpha is not None:
        alpha *= input_alpha.astype(np.float32) / 255.0
    return compose_rgba(rgb, alpha)
