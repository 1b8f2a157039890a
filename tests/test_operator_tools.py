"""Operator tools: check as a doctor, status of a running daemon, preview contact sheets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from PIL import Image

from tests.conftest import config_dict, wait_for
from tests.images import jpeg_bytes, product_rgb, write
from tests.test_cli import run
from unet_matting.watcher.commands.check import config_diff, directory_problems, disk_problems, inotify_problems
from unet_matting.watcher.config import load_config


def test_check_notes_device_model_and_tuned_settings(make_config) -> None:
    """check names the device, the model with its hash, and each setting that differs from the default."""
    result = run("check", "--config", str(make_config()))
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert "note: device cpu" in lines
    assert any(line.startswith("note: model tiny-u2netp.pth@") for line in lines)
    assert "note: watcher.quiet_period_s = 0.3 (default 2.0)" in lines
    assert "note: engine.input_size = 64 (default null)" in lines


def test_config_diff_is_empty_for_defaults(tmp_path: Path, tiny_model: Path) -> None:
    """A config that only sets paths and the model differs from the defaults in nothing."""
    from tests.conftest import REPO

    data = {
        "paths": {k: str(tmp_path / k) for k in ("incoming", "output", "archive", "failed", "state")},
        "engine": {"model": str(tiny_model)},
        "profiles_file": str(REPO / "etc/profiles.yaml"),
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    assert config_diff(load_config(tmp_path / "c.yaml")) == []


def test_low_disk_and_inotify_limit_are_problems(make_config, tmp_path: Path) -> None:
    """Too little free space and too few inotify watches for incoming's tree are reported."""
    cfg = load_config(make_config())
    assert disk_problems(cfg, minimum=1) == []
    assert any("GiB free" in p for p in disk_problems(cfg, minimum=1 << 62))
    for i in range(3):
        (cfg.paths.incoming / f"shop{i}").mkdir(parents=True)
    limit = write(tmp_path / "max_user_watches", b"4\n")
    (problem,) = inotify_problems(cfg, limit)
    assert "incoming has 4 directories" in problem and "max_user_watches is 4" in problem
    assert inotify_problems(cfg, write(tmp_path / "big", b"524288\n")) == []


def test_status_of_running_and_stopped_daemon(daemon) -> None:
    """status reports counts and the last file while running; exit 1 once stopped."""
    d = daemon()
    write(d.path("incoming") / "a.jpg", jpeg_bytes())
    wait_for(lambda: d.finished("done"))
    wait_for(lambda: '"done": 1' in (d.path("state") / "status.json").read_text())
    result = run("status", "--config", str(d.config))
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("running: pid ")
    assert "counts: done 1" in result.stdout and "last file: a.jpg (done)" in result.stdout
    assert d.stop() == 0
    stopped = run("status", "--config", str(d.config))
    assert stopped.returncode == 1 and stopped.stdout.startswith("NOT RUNNING")


def test_preview_writes_a_sheet_and_reports_bad_files(make_config, tmp_path: Path) -> None:
    """preview renders one row per good file (four tiles) and exits 1 naming a bad one."""
    good = write(tmp_path / "a.jpg", jpeg_bytes(product_rgb(240, 180)))
    bad = write(tmp_path / "b.jpg", b"garbage")
    result = run("preview", "--config", str(make_config()), "--out", str(tmp_path / "sheet.png"), str(good), str(bad))
    assert result.returncode == 1 and "FAILED" in result.stderr and "b.jpg" in result.stderr
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.height == 184 and sheet.width == 4 * 240 + 3 * 4


def test_preview_with_a_canvas_profile(make_config, tmp_path: Path) -> None:
    """ecom_product trims and squares the canvas: the sheet shows the original at its shape and
    the cut-out tiles at theirs (this crashed while on-white used the original's shape)."""
    good = write(tmp_path / "a.jpg", jpeg_bytes(product_rgb(240, 180)))
    result = run(
        "preview",
        "--config",
        str(make_config()),
        "--profile",
        "ecom_product",
        "--out",
        str(tmp_path / "sheet.png"),
        str(good),
    )
    assert result.returncode == 0, result.stderr
    assert "(1 image, model" in result.stdout
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.height == 184 and sheet.width == 240 + 3 * 180 + 3 * 4


def test_evaluate_refuses_missing_folders_and_reports_bad_masks(make_config, tmp_path: Path) -> None:
    """Missing --images/--masks folders are one sentence; a mask of the wrong size is a FAILED line, exit 1."""
    config = str(make_config())
    images, masks = tmp_path / "images", tmp_path / "masks"
    for missing, flag in ((images, "--images"), (masks, "--masks")):
        result = run("evaluate", "--config", config, "--images", str(images), "--masks", str(masks))
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.strip() == f"unet-matting: {flag} {missing} is not a directory"
        missing.mkdir()
    Image.fromarray(product_rgb(40, 30)).save(images / "a.png")
    Image.fromarray(product_rgb(40, 30, seed=2)).save(images / "b.png")
    Image.new("L", (40, 30)).save(masks / "a.png")
    Image.new("L", (20, 20)).save(masks / "b.png")
    result = run("evaluate", "--config", config, "--images", str(images), "--masks", str(masks))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "b.png: mask is 20x20, image is 40x30" in result.stdout and "MEAN (1 images)" in result.stdout


def test_check_reports_a_directory_the_service_account_cannot_list(tiny_model: Path) -> None:
    """Incoming at mode 0300 (writable, not listable) is a problem with owner and mode, checked as that account."""
    import os
    import pwd
    import shutil
    import tempfile

    if os.geteuid() != 0:
        pytest.skip("switching to the nobody account needs root")
    nobody = pwd.getpwnam("nobody")
    root = Path(tempfile.mkdtemp(prefix="unet-matting-check-"))  # /tmp/pytest-of-root is 0700: nobody can't pass
    root.chmod(0o755)
    (root / "cfg.yaml").write_text(yaml.safe_dump(config_dict(root, tiny_model, logging={"file": None})))
    cfg = load_config(root / "cfg.yaml")
    for key in ("incoming", "output", "archive", "failed", "state", "review"):
        getattr(cfg.paths, key).mkdir(parents=True, exist_ok=True)
        os.chown(getattr(cfg.paths, key), nobody.pw_uid, nobody.pw_gid)
    os.chmod(cfg.paths.incoming, 0o300)
    read, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child becomes the service account and runs the same checks
        try:
            os.close(read)
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            os.write(write_end, "\n".join(directory_problems(cfg)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read) as f:
        problems = f.read().splitlines()
    os.waitpid(pid, 0)
    shutil.rmtree(root)
    assert problems == [
        f"paths.incoming: {cfg.paths.incoming} (owner uid {nobody.pw_uid}, gid {nobody.pw_gid}, "
        f"mode d-wx------) cannot be listed by uid {nobody.pw_uid}"
    ]


def test_check_shows_settings_as_yaml_not_python() -> None:
    """Differences print paths and unset values as written in YAML, never as Python reprs."""
    from unet_matting.watcher.commands.check import _shown

    assert _shown(Path("/srv/models")) == "/srv/models" and _shown(None) == "null" and _shown(0.3) == "0.3"


def test_status_counts_quarantined_files_newest_by_time(tmp_path: Path) -> None:
    """Newest means last quarantined (not last in the alphabet); a report whose file went back is not counted."""
    import os

    from unet_matting.watcher.commands.status import quarantined

    for name, when in (("zebra.jpg", 100), ("apple.jpg", 300), ("moved-back.jpg", 200)):
        write(tmp_path / name, b"x")
        report = write(tmp_path / f"{name}.error.json", b"{}")
        os.utime(report, ns=(when * 10**9, when * 10**9))
    (tmp_path / "moved-back.jpg").unlink()
    assert quarantined(tmp_path) == [tmp_path / "zebra.jpg", tmp_path / "apple.jpg"]
