"""Quality metrics on masks with known answers, and the evaluate command end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO
from tests.images import jpeg_bytes, product_rgb, write
from unet_matting.engine.metrics import boundary_f, score


def square(size: int, lo: int, hi: int) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[lo:hi, lo:hi] = True
    return m


def test_perfect_prediction_scores_perfectly() -> None:
    """Prediction equal to the reference: MAE 0, IoU 1, boundary F 1."""
    ref = square(40, 10, 30).astype(np.uint8) * 255
    s = score(ref.astype(np.float32) / 255, ref)
    assert (s.mae, s.iou, s.boundary_f) == (0.0, 1.0, 1.0)


def test_known_iou_and_mae() -> None:
    """A 20x20 square against a 20x10 half: IoU 0.5, MAE = 200 wrong pixels / 1600."""
    ref = square(40, 10, 30).astype(np.uint8) * 255
    pred = np.zeros((40, 40), np.float32)
    pred[10:30, 10:20] = 1
    s = score(pred, ref)
    assert s.iou == pytest.approx(0.5) and s.mae == pytest.approx(200 / 1600)


def test_boundary_tolerance() -> None:
    """A boundary 2 px off matches at 2 px tolerance and mostly not at 1 px."""
    a, b = square(60, 10, 40), square(60, 12, 42)
    assert boundary_f(a, b, 2) == pytest.approx(1.0)
    assert boundary_f(a, b, 1) < 0.5


def test_size_mismatch_is_an_error() -> None:
    """Masks must match the image size."""
    with pytest.raises(ValueError, match="differ in size"):
        score(np.zeros((4, 4), np.float32), np.zeros((5, 4), np.uint8))


def test_evaluate_command(make_config, tmp_path: Path) -> None:
    """evaluate prints per-image and mean scores and writes a contact sheet."""
    for i in range(2):
        write(tmp_path / "images" / f"im{i}.jpg", jpeg_bytes(product_rgb(80, 60, seed=i)))
        Image.fromarray(np.full((60, 80), 255 * (i % 2), np.uint8)).save(write(tmp_path / "masks" / f"im{i}.png", b""))
    write(tmp_path / "images" / "nomask.jpg", jpeg_bytes())
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "unet_matting.watcher",
            "evaluate",
            "--config",
            str(make_config()),
            "--images",
            str(tmp_path / "images"),
            "--masks",
            str(tmp_path / "masks"),
            "--sheet",
            str(tmp_path / "sheet.png"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("im0.jpg") for line in lines) and any("MEAN (2 images)" in line for line in lines)
    assert any("nomask.jpg" in line and "skipped" in line for line in lines)
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.height >= 2 * 180
