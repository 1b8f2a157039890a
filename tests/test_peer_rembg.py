"""A peer's test suite: rembg's own fixtures and the mattes rembg made with isnet-general-use.

The engine, on the IS-Net build ``install.sh`` pulls, must reproduce them: mean absolute alpha
difference <= 0.006 per photo after rembg's own output step (min-max normalisation). Skips when
the model is not installed (``install.sh --offline``) or the shared data is absent.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO
from unet_matting.engine.session import Session
from unet_matting.engine.settings import EngineSettings
from unet_matting.watcher.processing.imageio import decode

PEER = REPO.parent / "shared" / "data" / "peer" / "rembg-tests"
ISNET = REPO / "var" / "models" / "isnet-general-use.onnx"
PHOTOS = ["anime-girl-1", "car-1", "cloth-1", "plants-1"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ISNET.is_file(), reason="IS-Net is not installed (install.sh pulls it)"),
    pytest.mark.skipif(not PEER.is_dir(), reason="../shared/data/peer/rembg-tests is absent"),
]


@pytest.fixture(scope="module")
def session() -> Session:
    return Session.load(EngineSettings(ISNET, device="cpu", threads=2, input_size=1024))  # rembg runs it at 1024


@pytest.mark.parametrize("photo", PHOTOS)
def test_reproduces_rembgs_isnet_matte(session: Session, photo: str) -> None:
    """Our IS-Net matte, min-max normalised as rembg does, is within 0.006 mean alpha of rembg's result."""
    image = decode((PEER / "fixtures" / f"{photo}.jpg").read_bytes(), 100_000_000)
    alpha = session.predict_alpha(image.rgb)
    alpha = (alpha - alpha.min()) / (alpha.max() - alpha.min())
    expected = np.asarray(Image.open(PEER / "results" / f"{photo}.isnet-general-use.png"))[..., 3] / 255.0
    assert alpha.shape == expected.shape
    assert np.abs(alpha - expected).mean() <= 0.006
