"""The engine session: image in, alpha matte out, on CPU (and CUDA where present)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.errors import ModelError
from engine.session import EngineSettings, Session, resolve_device
from tests.images import product_rgb


@pytest.fixture(scope="module")
def session(tiny_model: Path) -> Session:
    return Session.load(EngineSettings(tiny_model, device="cpu", threads=1, input_size=64))


def test_alpha_has_image_size_and_unit_range(session: Session) -> None:
    """The matte is float32 HxW in [0, 1] for any image size."""
    for height, width in ((240, 320), (31, 17), (500, 90)):
        alpha = session.predict_alpha(product_rgb(width, height))
        assert alpha.shape == (height, width) and alpha.dtype == np.float32
        assert 0.0 <= alpha.min() <= alpha.max() <= 1.0


def test_prediction_is_deterministic(session: Session) -> None:
    """The same image gives the same matte (no dropout or batch-norm updates at inference)."""
    rgb = product_rgb()
    np.testing.assert_array_equal(session.predict_alpha(rgb), session.predict_alpha(rgb))


def test_rejects_wrong_input(session: Session) -> None:
    """Only HxWx3 uint8 is accepted."""
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        session.predict_alpha(np.zeros((10, 10), np.uint8))


def test_model_info_names_file_and_hash(session: Session, tiny_model: Path) -> None:
    """Log lines can name the model by file and short hash."""
    assert session.info.label.startswith(f"{tiny_model.name}@") and len(session.info.label.split("@")[1]) == 12


def test_cuda_requested_without_gpu_is_an_error() -> None:
    """Asking for CUDA on a machine without it fails loudly instead of running on CPU."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelError, match="no CUDA device"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


@pytest.mark.gpu
def test_cuda_session_matches_cpu(tiny_model: Path) -> None:
    """On CUDA (half precision) the matte agrees with the CPU one within 2/255."""
    rgb = product_rgb()
    cpu = Session.load(EngineSettings(tiny_model, device="cpu", input_size=64)).predict_alpha(rgb)
    gpu = Session.load(EngineSettings(tiny_model, device="cuda", input_size=64)).predict_alpha(rgb)
    assert np.abs(cpu - gpu).max() < 2 / 255


@pytest.mark.gpu
def test_gpu_memory_fraction_is_applied(tiny_model: Path) -> None:
    """engine.gpu_memory_fraction caps the CUDA caching allocator for this process."""
    import torch

    Session.load(EngineSettings(tiny_model, device="cuda", input_size=64, gpu_memory_fraction=0.25))
    total = torch.cuda.get_device_properties(0).total_memory
    with pytest.raises(torch.OutOfMemoryError):
        torch.empty(int(total * 0.3), dtype=torch.uint8, device="cuda")
