"""Matte quality metrics against reference masks: MAE, IoU at 0.5, boundary F-measure."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Scores:
    mae: float
    iou: float
    boundary_f: float


def _boundary(mask: torch.Tensor) -> torch.Tensor:
    """Pixels of a binary mask that touch the other class (4-neighbourhood, 1 px wide)."""
    m = mask.float()[None, None]
    eroded = -F.max_pool2d(-m, 3, stride=1, padding=1)
    dilated = F.max_pool2d(m, 3, stride=1, padding=1)
    return ((dilated - eroded) > 0)[0, 0] & mask


def _dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    k = 2 * radius + 1
    return F.max_pool2d(mask.float()[None, None], k, stride=1, padding=radius)[0, 0] > 0


def boundary_f(pred: np.ndarray, truth: np.ndarray, tolerance_px: int = 2) -> float:
    """F-measure of boundary pixels matched within ``tolerance_px`` (binary masks)."""
    p, t = torch.from_numpy(pred), torch.from_numpy(truth)
    bp, bt = _boundary(p), _boundary(t)
    if not bp.any() and not bt.any():
        return 1.0
    if not bp.any() or not bt.any():
        return 0.0
    precision = (bp & _dilate(bt, tolerance_px)).sum().item() / bp.sum().item()
    recall = (bt & _dilate(bp, tolerance_px)).sum().item() / bt.sum().item()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def score(alpha: np.ndarray, reference: np.ndarray) -> Scores:
    """Compare a predicted matte in [0, 1] with an 8-bit reference mask of the same size."""
    if alpha.shape != reference.shape:
        raise ValueError(f"prediction {alpha.shape} and reference {reference.shape} differ in size")
    ref = reference.astype(np.float32) / 255.0
    pred_bin, ref_bin = alpha >= 0.5, ref >= 0.5
    union = np.logical_or(pred_bin, ref_bin).sum()
    iou = 1.0 if union == 0 else float(np.logical_and(pred_bin, ref_bin).sum() / union)
    return Scores(float(np.abs(alpha - ref).mean()), iou, boundary_f(pred_bin, ref_bin))
