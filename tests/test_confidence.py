"""The confidence score on synthetic mattes: the cases it must call right, and those it must doubt."""

from __future__ import annotations

import numpy as np
import pytest

from unet_matting.engine import confidence as conf

H, W = 600, 480


def disc(cy: float, cx: float, r: float, soft: float = 1.5) -> np.ndarray:
    """A disc with an anti-aliased edge ``soft`` px wide."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    d = np.hypot(yy - cy, xx - cx)
    return np.clip((r - d) / soft + 0.5, 0, 1).astype(np.float32)


def test_a_clean_product_scores_high_with_no_reason() -> None:
    alpha = disc(300, 240, 180)
    judged = conf.confidence(alpha, alpha)  # the second opinion agrees
    assert judged.score > 0.8
    assert judged.reasons == ()


def test_two_objects_of_one_size_are_doubtful() -> None:
    alpha = np.maximum(disc(300, 120, 90), disc(300, 360, 90))
    judged = conf.confidence(alpha, alpha)
    assert judged.score <= conf.CAP
    assert judged.reasons[0] == "a second object of similar size"
    assert judged.signals["second"] == pytest.approx(1.0, abs=0.02)


def test_a_small_prop_beside_the_product_is_not_a_second_product() -> None:
    alpha = np.maximum(disc(300, 200, 170), disc(520, 430, 25))
    judged = conf.confidence(alpha, alpha)
    assert judged.score > 0.5
    assert "a second object of similar size" not in judged.reasons


def test_a_wide_unsure_band_is_doubtful() -> None:
    alpha = disc(300, 240, 150, soft=160)  # grey from the centre to far outside: the network could not tell
    judged = conf.confidence(alpha, alpha)
    assert judged.score < 0.5
    assert "large unsure region" in judged.reasons


def test_an_empty_matte_is_doubtful() -> None:
    alpha = np.zeros((H, W), np.float32)
    judged = conf.confidence(alpha, alpha)
    assert judged.score <= conf.CAP
    assert judged.reasons[0] == "almost empty"


def test_a_matte_that_changes_with_the_input_size_is_doubted() -> None:
    """The second opinion sees another object: the score falls and says why. (On its own it does
    not push a crisp matte below 0.5: fitted on the eval sets, disagreement weighs with the rest.)"""
    alpha = disc(300, 240, 180, soft=6)  # a soft edge like a network's
    other = disc(100, 100, 60, soft=6)
    agreed, disagreed = conf.confidence(alpha, alpha), conf.confidence(alpha, other)
    assert agreed.score > 0.95 and agreed.reasons == ()
    assert disagreed.score < agreed.score - 0.25
    assert disagreed.reasons == ("the matte changes with the network's input size",)


def test_without_a_second_opinion_the_signal_sits_at_its_mean() -> None:
    alpha = disc(300, 240, 180)
    judged = conf.confidence(alpha)
    assert "log_disagreement" not in judged.signals
    assert judged.score > 0.8


def test_the_score_does_not_depend_on_the_photo_size() -> None:
    small = disc(300, 240, 180)
    big = np.kron(small, np.ones((5, 5), np.float32))  # 3000x2400, the same matte
    assert conf.confidence(big, small).score == pytest.approx(conf.confidence(small, small).score, abs=0.02)
    assert max(conf.working(big).shape) == conf.WORK_SIDE
