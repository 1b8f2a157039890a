"""Models swapped live: the control file names the model, the daemon switches between files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import DaemonProcess, profiles_without_review, save_tiny_model, wait_for
from tests.images import jpeg_bytes, product_rgb, write


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    models.mkdir()
    for seed, name in ((0, "first.pth"), (1, "second.pth")):
        save_tiny_model(models / name, seed)
    (models / "broken.pth").write_bytes(b"not a checkpoint")
    (models / "active_model").write_text("first.pth\n")
    return models


def test_swap_during_a_burst(daemon, models_dir: Path) -> None:
    """Every output of a burst names exactly one model, both models appear, none failed."""
    d: DaemonProcess = daemon(engine={"models_dir": str(models_dir)})
    names: list[str] = []

    def upload(count: int) -> None:
        for _ in range(count):
            names.append(f"p{len(names):03d}.jpg")
            write(d.path("incoming") / names[-1], jpeg_bytes(product_rgb(640, 480, seed=len(names))))

    upload(10)
    wait_for(lambda: len(d.finished("done")) >= 4)
    (models_dir / "active_model").write_text("second.pth\n")
    deadline = time.monotonic() + 60
    while not d.events("model_switched"):  # the burst goes on while the new model loads
        upload(1)
        time.sleep(0.05)
        assert time.monotonic() < deadline, "the model never switched"
    upload(10)
    wait_for(lambda: len(d.finished()) >= len(names), timeout=120)
    jobs = d.finished()
    assert [j["outcome"] for j in jobs] == ["done"] * len(names), [(j["file"], j["outcome"]) for j in jobs]
    models = [j["model"].split("@")[0] for j in jobs]
    assert set(models) == {"first.pth", "second.pth"}
    # a job keeps the model it started with: after the first output of the new model, only the
    # jobs that other workers had in hand at the switch may still finish with the old one
    (ready,) = d.events("daemon_ready")
    switch = models.index("second.pth")
    assert models[switch:].count("first.pth") <= ready["workers"] - 1, models
    (switched,) = d.events("model_switched")
    assert switched["model"].startswith("second.pth@") and switched["previous"].startswith("first.pth@")
    for name in names:
        with Image.open(d.path("output") / name.replace(".jpg", ".png")) as im:
            im.load()
    assert d.stop() == 0


def test_broken_model_keeps_the_old_one(daemon, models_dir: Path) -> None:
    """A model that fails to load is logged and the active model stays in use."""
    d: DaemonProcess = daemon(engine={"models_dir": str(models_dir)})
    (models_dir / "active_model").write_text("broken.pth\n")
    wait_for(lambda: d.events("model_load_failed"))
    assert "not a loadable PyTorch checkpoint" in d.events("model_load_failed")[0]["error"]
    write(d.path("incoming") / "after.jpg", jpeg_bytes())
    wait_for(lambda: d.finished("done"))
    assert d.finished("done")[0]["model"].startswith("first.pth@")
    assert d.events("model_switched") == []
    assert d.stop() == 0


def test_ecom_product_outputs_through_the_daemon(daemon, tmp_path: Path) -> None:
    """ecom_product gives a square, trimmed PNG plus a white JPEG; incoming/id_photo/ uses id_photo.
    (Review off: the tiny model's grey matte would be held; tests/test_review_flow.py holds it.)"""
    d: DaemonProcess = daemon(
        profile="ecom_product",
        profiles_by_folder={"id_photo": "id_photo"},
        profiles_file=profiles_without_review(tmp_path),
    )
    write(d.path("incoming") / "shoe.jpg", jpeg_bytes(product_rgb(400, 300)))
    write(d.path("incoming") / "id_photo" / "anna.jpg", jpeg_bytes(product_rgb(300, 400)))
    wait_for(lambda: len(d.finished("done")) == 2)
    by_file = {j["file"]: j for j in d.finished()}
    assert by_file["shoe.jpg"]["profile"] == "ecom_product" and by_file["id_photo/anna.jpg"]["profile"] == "id_photo"
    with Image.open(d.path("output") / "shoe.png") as png, Image.open(d.path("output") / "shoe.jpg") as jpg:
        assert png.mode == "RGBA" and png.size[0] == png.size[1] and jpg.mode == "RGB" and jpg.size == png.size
    with Image.open(d.path("output") / "id_photo" / "anna.png") as portrait:
        assert abs(portrait.size[0] / portrait.size[1] - 7 / 9) < 0.02
    assert d.stop() == 0


def test_a_swapped_out_cuda_model_gives_its_memory_back_once_its_last_job_ends(monkeypatch) -> None:
    """The cache is emptied only after every job holding the old model has let go of it."""
    from types import SimpleNamespace

    from unet_matting.engine import session as engine_session
    from unet_matting.watcher.models.active import RetiredModels

    class FakeSession:  # weak-referenceable, on "cuda"
        device = SimpleNamespace(type="cuda")

    released = []
    monkeypatch.setattr(engine_session, "release_cached_memory", lambda: released.append(1))
    retired = RetiredModels()
    old = FakeSession()
    job_holds = old
    retired.retire(old)
    retired.retire(FakeSession())  # dropped at once: nothing holds it
    del old
    assert not retired.release_when_unused() and not released  # a job still runs on the old model
    del job_holds
    assert retired.release_when_unused() and released == [1]
    assert not retired.release_when_unused()  # nothing left to release
    cpu = FakeSession()
    cpu.device = SimpleNamespace(type="cpu")
    retired.retire(cpu)
    assert not retired.release_when_unused()
