"""How far to trust a cut-out: a score in 0..1 (higher: more likely right) with named reasons.

Pure functions on mattes. The signals come from what the run already has, at a small working
scale (``WORK_SIDE``), so the cost does not grow with the photo:

- ``indecision``: 1 - mean |2a - 1| over the frame. A right matte is near 0 or 1 almost
  everywhere; a network that cannot tell the product from its surroundings leaves wide grey
  regions.
- ``second``: the second-largest object's area over the largest's (a prop kept with the product).
- ``disagreement``: the mean absolute difference between the matte and a second opinion, the
  same network at a small input size (``CHECK_SIZE``: about a sixth of the forward pass), over
  the area either calls product. A matte that changes with the input size is a guess; the
  classic uncertainty estimate from two predictions, at the price of one small one.

They are combined by a logistic model (``WEIGHTS``) fitted with ``bench/gate.py --fit`` on the
shared eval sets and the drawn packshots (cut-outs with IoU < 0.8 against those with IoU >= 0.9,
classes weighted equally), so the score is the model's probability that the cut-out is right;
``ecom_product``'s ``review_below`` (0.55) was chosen by cross-validation there. Two cases
need no fitting and cap the score: an almost empty matte, and a second object of the largest's
size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from unet_matting.engine.filters import label

WORK_SIDE = 320  # long side of the working copies (px)
LEVEL_BAND = 64  # rows of a matte brought to 8 bits at a time (``_resized``)
CHECK_SIZE = 320  # the second opinion's network input side
SOLID = 0.5  # alpha from which a pixel is product
EMPTY = 0.005  # product area under this share of the frame: almost empty
TWIN = 0.5  # a second object at least this share of the largest: a second product, or a prop
CAP = 0.25  # the score of a cut-out one of the two rules above calls doubtful

# logistic model of "the cut-out is wrong": intercept, then (mean, spread, weight) per signal;
# from bench/gate.py --fit (see docs/models.md for the figures it was fitted on)
INTERCEPT = -2.50
WEIGHTS = {
    "indecision": (0.0122, 0.0194, 2.96),
    "second": (0.0057, 0.0548, 1.13),
    "log_disagreement": (-1.4584, 1.5466, 1.93),
}
NAMES = {
    "indecision": "large unsure region",
    "second": "a second object beside the product",
    "log_disagreement": "the matte changes with the network's input size",
}
AGREED = 0.02  # mean |difference| of two passes that agree (JPEG, resampling)
REACH = 3.0  # spreads from its mean a feature may count
TWIN_REASON = "a second object of similar size"
REASON_PUSH = 0.75  # a signal pushing the logit up this much (or more) is named as a reason


@dataclass(frozen=True)
class Confidence:
    """``score`` in 0..1, the ``reasons`` it is low (one short phrase each), and the signals."""

    score: float
    reasons: tuple[str, ...]
    signals: dict[str, float]


def working(alpha: np.ndarray, side: int = WORK_SIDE) -> np.ndarray:
    """``alpha`` (HxW float 0..1) with its long side ``side`` at most, by area averaging."""
    height, width = alpha.shape
    scale = side / max(height, width)
    if scale >= 1:
        return alpha.astype(np.float32, copy=False)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return _resized(alpha, size, Image.BOX)


def _resized(alpha: np.ndarray, size: tuple[int, int], method: int) -> np.ndarray:
    """``alpha`` at ``size`` (width, height) through 8 bits, as the PNG stores it: the bits of
    clip(alpha, 0, 1) * 255 + 0.5 truncated, a band of rows at a time, so the float temporary
    stays in the cache (a 12 MP matte: 20 -> 12.5 ms, one thread; the same bits)."""
    eight = np.empty(alpha.shape, np.uint8)
    for top in range(0, alpha.shape[0], LEVEL_BAND):
        levels = np.multiply(alpha[top : top + LEVEL_BAND], np.float32(255), dtype=np.float32)
        levels += np.float32(0.5)
        np.clip(levels, np.float32(0.5), np.float32(255.5), out=levels)
        eight[top : top + LEVEL_BAND] = levels
    image = Image.fromarray(eight).resize(size, method)
    return np.asarray(image, np.float32) / 255.0


def signals(alpha: np.ndarray, check: np.ndarray | None = None) -> dict[str, float]:
    """The signals of a working-scale matte, and of its second opinion ``check`` (same shape)."""
    body = alpha > SOLID
    labels, count = label(body)
    sizes = np.sort(np.bincount(labels.ravel())[1:])[::-1] if count else np.zeros(1)
    found = {
        "area": float(body.mean()),
        "indecision": float(1.0 - np.abs(2.0 * alpha - 1.0).mean()),
        "second": float(sizes[1] / sizes[0]) if count > 1 else 0.0,
    }
    if check is not None:
        either = body | (check > SOLID)
        found["disagreement"] = float(np.abs(alpha - check).sum() / max(int(either.sum()), 1))
    return found


def features(found: dict[str, float]) -> dict[str, float]:
    """The logistic model's inputs from the signals: the disagreement on a log scale (from
    ``AGREED``: below it, two passes agree as well as they can)."""
    out = {"indecision": found["indecision"], "second": found["second"]}
    if "disagreement" in found:
        out["log_disagreement"] = math.log(max(found["disagreement"], AGREED))
    return out


def standardised(name: str, value: float) -> float:
    """``value`` of feature ``name`` in spreads from its mean, within +-``REACH``: one extreme
    signal cannot outvote the others."""
    mean, spread, _ = WEIGHTS[name]
    return min(max((value - mean) / spread, -REACH), REACH)


def score(found: dict[str, float]) -> Confidence:
    """The confidence the signals give (``signals``'s output)."""
    logit, pushes = INTERCEPT, {}
    for name, value in features(found).items():  # no second opinion: that term is left out (its mean)
        pushes[name] = WEIGHTS[name][2] * standardised(name, value)
        logit += pushes[name]
    value = 1.0 - 1.0 / (1.0 + math.exp(-logit))
    reasons = [NAMES[name] for name, push in sorted(pushes.items(), key=lambda kv: -kv[1]) if push >= REASON_PUSH]
    if found["area"] < EMPTY:
        value, reasons = min(value, CAP), ["almost empty", *reasons]
    elif found["second"] >= TWIN:
        value = min(value, CAP)
        reasons = [TWIN_REASON, *(r for r in reasons if r != NAMES["second"])]
    return Confidence(round(value, 4), tuple(reasons), {k: round(v, 4) for k, v in found.items()})


def confidence(alpha: np.ndarray, check: np.ndarray | None = None) -> Confidence:
    """The confidence of a cut-out's matte ``alpha`` (HxW, any size), with the network's second
    opinion ``check`` at ``CHECK_SIZE`` (any size: brought to ``alpha``'s working shape)."""
    small = working(alpha)
    second = None if check is None else _resized(check, small.shape[::-1], Image.BILINEAR)
    return score(signals(small, second))
