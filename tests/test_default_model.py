"""The shipped default weights: they load, and they cut out simple product shots well.

Tolerances are loose on purpose, so retraining needs no test edits unless quality really
changed. The images are drawn by tests/data/make_golden.py (not in the training data).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO
from unet_matting.engine.catalogue import SHIPPED_MODEL, lookup
from unet_matting.engine.metrics import score
from unet_matting.engine.networks import load_network
from unet_matting.engine.session import Session
from unet_matting.watcher.config import load_config
from unet_matting.watcher.models.active import best_installed, engine_settings

GOLDEN = REPO / "tests" / "data" / "golden"
WEIGHTS = REPO / "engine" / "weights" / "u2netp-products.pth"


@pytest.fixture(scope="module")
def session() -> Session:
    """The engine as the shipped config sets it up on a machine with nothing pulled, on the CPU."""
    cfg = replace(load_config(REPO / "etc/unet-matting.yaml").engine, models_dir=None)
    return Session.load(replace(engine_settings(cfg), device="cpu"))


def test_auto_falls_back_to_the_shipped_weights(tmp_path: Path) -> None:
    """With no model pulled, engine.model: auto runs the committed file, small enough to keep in git."""
    assert best_installed(tmp_path) == WEIGHTS == SHIPPED_MODEL
    assert WEIGHTS.stat().st_size < 5_000_000


def test_auto_prefers_the_best_installed_commercial_model(tmp_path: Path) -> None:
    """auto takes the highest-ranked installed model, skipping licences that forbid commercial use."""
    for entry in (lookup("u2net"), lookup("isnet-general-use"), lookup("bria-rmbg-2.0")):
        (tmp_path / entry.file).write_bytes(b"x")
    assert best_installed(tmp_path) == tmp_path / "isnet-general-use.onnx"


def test_shipped_weights_load_strictly() -> None:
    """The committed fp16 state dict loads into U²-Net-P with strict keys."""
    net, info = load_network(WEIGHTS)
    assert info.arch == "u2netp" and sum(p.numel() for p in net.parameters()) == 1_131_181


@pytest.mark.parametrize("name", ["bottle", "box", "sneaker"])
def test_golden_product_shots(session: Session, name: str) -> None:
    """Each golden shot: IoU >= 0.85 and MAE <= 0.08 against its exact mask."""
    rgb = np.asarray(Image.open(GOLDEN / f"{name}.png").convert("RGB"))
    mask = np.asarray(Image.open(GOLDEN / f"{name}.mask.png"))
    s = score(session.predict_alpha(rgb), mask)
    assert s.iou >= 0.85 and s.mae <= 0.08, s
