"""Post-processing of a predicted alpha matte, driven by a profile; pure functions on arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def threshold(alpha: np.ndarray, cutoff: float) -> np.ndarray:
    """Zero alpha below ``cutoff`` (in place)."""
    if cutoff > 0:
        alpha[alpha < cutoff] = 0.0
    return alpha


def _separable(alpha: np.ndarray, radius: int, combine) -> np.ndarray:
    """Apply ``combine(acc, shifted, tap)`` over 2r+1 edge-replicated shifts, rows then columns.

    Shifted views of one padded copy are much faster than single-channel convolutions here.
    """
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        padded = np.pad(alpha, pad, mode="edge")
        n = alpha.shape[axis]
        acc = None
        for tap in range(2 * radius + 1):
            view = padded[tap:tap + n] if axis == 0 else padded[:, tap:tap + n]
            acc = combine(acc, view, tap)
        alpha = acc
    return alpha


def erode(alpha: np.ndarray, kernel: int) -> np.ndarray:
    """Grey-level erosion (min filter) with a ``kernel`` x ``kernel`` square."""
    if kernel <= 1:
        return alpha
    return _separable(alpha, kernel // 2, lambda acc, view, _: view.copy() if acc is None else
                      np.minimum(acc, view, out=acc))


def gaussian_taps(sigma: float) -> np.ndarray:
    radius = max(1, int(round(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def feather(alpha: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of the matte with standard deviation ``sigma`` pixels."""
    if sigma <= 0:
        return alpha
    taps = gaussian_taps(sigma)

    def combine(acc: np.ndarray | None, view: np.ndarray, tap: int) -> np.ndarray:
        if acc is None:
            return view * taps[tap]
        acc += view * taps[tap]
        return acc

    return _separable(alpha, len(taps) // 2, combine)


def refine_alpha(alpha: np.ndarray, profile: Profile) -> np.ndarray:
    """Apply the profile's steps to an HxW float matte in [0, 1]; returns a new array."""
    out = np.array(alpha, dtype=np.float32, copy=True)
    out = threshold(out, profile.alpha_threshold)
    out = erode(out, profile.erosion_kernel)
    out = feather(out, profile.edge_feathering)
    return np.clip(out, 0.0, 1.0, out=out)


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
