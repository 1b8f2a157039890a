"""The engine session: image in, alpha matte out, on CPU (and CUDA where present)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, wait_for
from tests.images import product_rgb
from unet_matting.engine.errors import ModelError
from unet_matting.engine.session import EngineSettings, Session, release_cached_memory, resolve_device

SHIPPED = REPO / "engine" / "weights" / "u2netp-products.pth"


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


def test_the_cpu_resizes_a_photo_band_by_band_with_the_same_bits_as_all_at_once() -> None:
    """The network's input on the CPU is made a band of rows at a time (narrowed first, as
    torch's separable resize does), and is the same tensor, bit for bit, as resizing the whole
    photo at once: heights that the band does not divide, photos smaller than the input
    (enlarged), one side already at the size, and a read-only, strided photo."""
    import torch

    from unet_matting.engine.session import _resize, _resize_in_bands

    rng = np.random.default_rng(3)
    for height, width in ((413, 301), (301, 413), (90, 700), (64, 64), (1, 1), (257, 96)):
        rgb = (rng.random((height, width, 3)) * 255).astype(np.uint8)
        for size in (64, 96, 320):
            expected = _resize(torch.from_numpy(rgb), size)
            for rows in (7, 32):
                assert torch.equal(_resize_in_bands(rgb, size, rows), expected), (height, width, size, rows)
    strided = (rng.random((300, 400, 3)) * 255).astype(np.uint8)[::2, ::-1]
    strided.flags.writeable = False
    expected = _resize(torch.from_numpy(np.array(strided, order="C")), 96)
    assert torch.equal(_resize_in_bands(strided, 96), expected)


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


def _concurrently(session: Session, images: list[np.ndarray]) -> list[np.ndarray | BaseException]:
    """Run predict_alpha from one thread per image, all queued before the network is free."""
    results: list[np.ndarray | BaseException] = [None] * len(images)  # type: ignore[list-item]

    def run(i: int) -> None:
        try:
            results[i] = session.predict_alpha(images[i])
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(images))]
    with session._network:  # hold the network so every caller queues first
        for t in threads:
            t.start()
        wait_for(lambda: len(session._queue) == len(images), timeout=30)
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a caller hung"
    return results


def test_concurrent_callers_share_batches_with_unbatched_results() -> None:
    """Six callers at once run as batches of at most max_batch, and each matte is within 1/255
    of the one the same image gets alone (sizes differ, so the resizes differ per image)."""
    settings = EngineSettings(SHIPPED, device="cpu", threads=1, input_size=96, max_batch=4)
    alone, shared = Session.load(replace(settings, max_batch=1)), Session.load(settings)
    images = [product_rgb(200 + 30 * i, 150 + 20 * i, seed=i) for i in range(6)]
    expected = [alone.predict_alpha(rgb) for rgb in images]
    got = _concurrently(shared, images)
    assert shared.batch_counts == Counter({4: 1, 2: 1})
    for want, have in zip(expected, got, strict=True):
        assert isinstance(have, np.ndarray) and have.shape == want.shape
        assert np.abs(have - want).max() <= 1 / 255


def test_a_failing_batch_fails_every_caller_in_it_and_hangs_none(tiny_model: Path) -> None:
    """An error in the forward pass reaches each waiting caller; the session still works after."""
    session = Session.load(EngineSettings(tiny_model, device="cpu", threads=1, input_size=64, max_batch=4))
    net = session.net

    def broken(x: object) -> object:
        raise RuntimeError("out of memory (simulated)")

    session.net = broken  # type: ignore[assignment]
    results = _concurrently(session, [product_rgb(80, 60, seed=i) for i in range(3)])
    assert all(isinstance(r, RuntimeError) and "simulated" in str(r) for r in results), results
    session.net = net
    assert session.predict_alpha(product_rgb(80, 60)).shape == (60, 80)


def test_a_batch_out_of_gpu_memory_runs_again_one_image_at_a_time(tiny_model: Path) -> None:
    """A batch that runs out of GPU memory is split: every caller still gets its own matte."""
    import torch

    session = Session.load(EngineSettings(tiny_model, device="cpu", threads=1, input_size=64, max_batch=4))
    net, sizes = session.net, []

    def small_batches_only(x: torch.Tensor) -> object:
        sizes.append(len(x))
        if len(x) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return net(x)

    images = [product_rgb(80, 60, seed=i) for i in range(3)]
    expected = [session.predict_alpha(rgb) for rgb in images]
    session.net = small_batches_only  # type: ignore[assignment]
    got = _concurrently(session, images)
    assert sizes == [3, 1, 1, 1]
    for want, have in zip(expected, got, strict=True):
        assert isinstance(have, np.ndarray)
        np.testing.assert_allclose(have, want, atol=1e-6)


def test_an_image_out_of_gpu_memory_alone_fails_its_job_with_a_plain_reason(tiny_model: Path) -> None:
    """When even one input does not fit, its caller gets GpuMemoryError naming the size asked
    for; the session keeps working for the next call."""
    import torch

    from unet_matting.engine.errors import GpuMemoryError

    session = Session.load(EngineSettings(tiny_model, device="cpu", threads=1, input_size=64, max_batch=4))
    net = session.net

    def no_room(x: torch.Tensor) -> object:
        raise torch.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity "
            "of 139.81 GiB of which ... (simulated)"
        )

    session.net = no_room  # type: ignore[assignment]
    with pytest.raises(GpuMemoryError, match=r"^out of GPU memory running the network: tried to allocate 2.00 gib$"):
        session.predict_alpha(product_rgb(80, 60))
    session.net = net
    assert session.predict_alpha(product_rgb(80, 60)).shape == (60, 80)


def test_a_model_that_does_not_fit_in_the_gpu_cap_fails_at_load(tiny_model: Path, monkeypatch) -> None:
    """The warm-up at load is the memory check: a network that cannot run one image within the
    cap is a ModelError at load (a switch keeps the old model), not a failed job per upload."""
    import torch

    def no_room(self: Session, batch: list) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 512.00 MiB")

    monkeypatch.setattr(Session, "_forward", no_room)
    with pytest.raises(
        ModelError,
        match=r"does not fit in the GPU memory this process may use "
        r"\(engine.gpu_memory_fraction 0.02\)",
    ):
        Session.load(EngineSettings(tiny_model, device="cpu", threads=1, input_size=64, gpu_memory_fraction=0.02))


def test_the_gpu_memory_cap_names_the_device_by_index(tiny_model: Path, monkeypatch) -> None:
    """torch's set_per_process_memory_fraction needs a device index: given torch.device("cuda")
    it raised ValueError, so any gpu_memory_fraction below 1 failed the load on the H200."""
    import torch

    from unet_matting.engine import session as session_module

    class Stop(Exception):
        pass

    calls = []

    def record(fraction: float, device: object) -> None:
        calls.append((fraction, device))
        raise Stop  # the rest of the load needs a real GPU

    monkeypatch.setattr(session_module, "resolve_device", lambda choice: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", record)
    with pytest.raises(Stop):
        Session.load(EngineSettings(tiny_model, device="cuda", gpu_memory_fraction=0.25))
    assert calls == [(0.25, 0)]


def test_memory_figures_are_none_on_the_cpu(session: Session) -> None:
    """status.json and /metrics report GPU memory only for a CUDA session."""
    assert session.memory() is None


@pytest.mark.gpu
def test_gpu_memory_figures_and_release(tiny_model: Path) -> None:
    """A CUDA session reports allocated <= peak and reserved; releasing the cache after the
    session is gone returns reserved memory to the driver."""
    import gc

    import torch

    session = Session.load(EngineSettings(tiny_model, device="cuda", input_size=256))
    session.predict_alpha(product_rgb(2000, 1500))
    figures = session.memory()
    assert figures is not None and 0 < figures["allocated"] <= figures["peak"] <= figures["reserved"]
    baseline = torch.cuda.memory_allocated()
    del session
    gc.collect()
    release_cached_memory()
    assert torch.cuda.memory_allocated() < baseline
    assert torch.cuda.memory_reserved() <= torch.cuda.memory_allocated() + (2 << 20)


def test_flip_tta_averages_the_mirrored_prediction(tiny_model: Path) -> None:
    """With flip_tta the matte is the mean of the plain prediction and the mirrored one, mirrored back
    (in fp32: bf16 rounds a batch of two differently from two batches of one)."""
    rgb = np.random.default_rng(7).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    plain = Session.load(EngineSettings(tiny_model, device="cpu", threads=1, input_size=64, precision="fp32"))
    tta = Session.load(
        EngineSettings(tiny_model, device="cpu", threads=1, input_size=64, flip_tta=True, precision="fp32")
    )
    expected = (plain.predict_alpha(rgb) + plain.predict_alpha(rgb[:, ::-1].copy())[:, ::-1]) / 2
    np.testing.assert_allclose(tta.predict_alpha(rgb), expected, atol=1e-5)
    assert np.abs(plain.predict_alpha(rgb) - expected).max() > 1e-4, "the test network must not be symmetric"
