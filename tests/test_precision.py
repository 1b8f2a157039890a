"""engine.precision: which number format runs, and the load's proof against fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import save_tiny_model
from unet_matting.engine import precision
from unet_matting.engine.errors import ModelError
from unet_matting.engine.session import EngineSettings, Session

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_is_fp16_on_cuda_bf16_on_a_cpu_with_bf16_units_and_fp32_elsewhere(monkeypatch) -> None:
    assert precision.resolve("auto", CUDA, True) == "fp16"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert precision.resolve("auto", CPU, True) == "bf16"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert precision.resolve("auto", CPU, True) == "fp32"
    assert precision.resolve("bf16", CPU, False) == "fp32"  # onnxruntime runs float32 whatever is asked
    assert precision.resolve("fp32", CUDA, True) == "fp32"
    with pytest.raises(ValueError, match="fp16 runs on CUDA only"):
        precision.resolve("fp16", CPU, True)


def test_native_bf16_units_are_read_from_the_cpu_flags(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n")
    assert precision.cpu_flags(info) >= {"avx512_bf16", "avx512f"}
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f\n")
    assert not precision.cpu_flags(info) & set(precision.BF16_UNITS)
    assert precision.cpu_flags(tmp_path / "absent") == set()


def test_agreement_passes_small_differences_and_fails_flipped_pixels() -> None:
    xx = np.mgrid[0:100, 0:100][1].astype(np.float32)
    reference = np.clip((xx - 50.5) / 4 + 0.5, 0.02, 0.98)  # a matte: background, a soft edge, product
    close = reference + 4 / 255 * np.sin(np.arange(10_000)).reshape(100, 100).astype(np.float32)
    check = precision.agreement("bf16", reference, close)
    assert check.passed and check.used == "bf16" and check.max_difference <= 4 / 255 + 1e-6
    wrong = reference.copy()
    wrong[:10] = 1 - wrong[:10]  # a tenth of the matte on the other side of 0.5
    failed = precision.agreement("bf16", reference, wrong)
    assert not failed.passed and failed.used == "fp32" and failed.flipped > precision.MAX_FLIPPED


def test_a_bf16_session_runs_under_autocast_after_its_check(tmp_path: Path) -> None:
    model = save_tiny_model(tmp_path / "tiny.pth")
    session = Session.load(EngineSettings(model, "cpu", 1, 64, precision="bf16"))
    check = session.precision_check
    assert check is not None and check.wanted == "bf16"
    assert check.max_difference < 0.1 and check.mean_difference < check.max_difference
    assert session.precision == check.used
    fp32 = Session.load(EngineSettings(model, "cpu", 1, 64, precision="fp32"))
    assert fp32.precision == "fp32" and fp32.precision_check is None
    image = precision.test_image(64)
    difference = np.abs(session.predict_alpha(image) - fp32.predict_alpha(image))
    assert difference.max() <= precision.MAX_DIFFERENCE


def test_bf16_casts_the_convolutions_once_and_gives_autocasts_bits(tmp_path: Path) -> None:
    """The convolutions' weights are bfloat16 from the load on, and the network's output is bit
    for bit what autocast gives on the fp32 weights (it casts the same weights at every pass)."""
    model = save_tiny_model(tmp_path / "tiny.pth")
    session = Session.load(EngineSettings(model, "cpu", 1, 64, precision="bf16"))
    assert session.precision == "bf16"
    convs = [m for m in session.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.weight.dtype == torch.bfloat16 for m in convs)
    fp32 = Session.load(EngineSettings(model, "cpu", 1, 64, precision="fp32"))
    assert all(m.weight.dtype == torch.float32 for m in fp32.net.modules() if isinstance(m, torch.nn.Conv2d))
    x = fp32.prepare(precision.test_image(64))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        cast_once, cast_each_pass = session.net(x)[0], fp32.net(x)[0]
    assert cast_once.dtype == cast_each_pass.dtype and torch.equal(cast_once, cast_each_pass)


def test_a_format_that_disagrees_with_fp32_falls_back(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(precision, "MAX_DIFFERENCE", 0.0)  # no bf16 matte is that exact
    monkeypatch.setattr("unet_matting.engine.session.agreement", precision.agreement)
    model = save_tiny_model(tmp_path / "tiny.pth")
    session = Session.load(EngineSettings(model, "cpu", 1, 64, precision="bf16"))
    assert session.precision == "fp32" and session.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in session.net.parameters())  # the fp32 weights back
    assert session.precision_check is not None and not session.precision_check.passed
    image = precision.test_image(64)
    fp32 = Session.load(EngineSettings(model, "cpu", 1, 64, precision="fp32"))
    assert np.array_equal(session.predict_alpha(image), fp32.predict_alpha(image))  # exactly fp32 again


def test_fp16_on_the_cpu_is_a_clear_model_error(tmp_path: Path) -> None:
    model = save_tiny_model(tmp_path / "tiny.pth")
    with pytest.raises(ModelError, match="engine.precision fp16 runs on CUDA only"):
        Session.load(EngineSettings(model, "cpu", 1, 64, precision="fp16"))
