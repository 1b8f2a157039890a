"""The daemon end to end, as a subprocess with a real observer on tmp_path."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import DaemonProcess, matching, read_log, save_print_model, wait_for
from tests.images import (
    animated_bytes,
    cmyk_jpeg_bytes,
    exif_rotated_jpeg,
    jpeg_bytes,
    palette_png_bytes,
    png16_rgb_bytes,
    png_bomb_bytes,
    product_rgb,
    studio_packshot,
    write,
)
from unet_matting.watcher.processing.runner import attempt_key

OBSERVERS = ["inotify", "polling"]


def slow_write(path: Path, data: bytes, chunks: int = 8, pause: float = 0.1) -> None:
    """Write like an sftp client: in place, in chunks, with pauses shorter than the quiet period."""
    path.parent.mkdir(parents=True, exist_ok=True)
    step = -(-len(data) // chunks)
    with open(path, "wb") as f:
        for i in range(0, len(data), step):
            f.write(data[i : i + step])
            f.flush()
            time.sleep(pause)


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())


def published(root: Path) -> list[str]:
    """The cut-outs under ``root``, checked to be exactly the files their sets' manifests name."""
    files = all_files(root)
    named = sorted(
        str(Path(m).parent / name)
        for m in files
        if m.endswith(".json")
        for name in json.loads((root / m).read_text())["files"]
    )
    assert named == [f for f in files if not f.endswith(".json")]
    return named


def assert_png(path: Path, size: tuple[int, int]) -> None:
    with Image.open(path) as im:
        im.load()
        assert im.mode == "RGBA" and im.size == size


@pytest.mark.parametrize("observer", OBSERVERS)
def test_slow_upload_becomes_one_png_and_archived_original(daemon, observer: str) -> None:
    """An in-place upload written in chunks is processed once, after it is complete."""
    d: DaemonProcess = daemon(watcher={"observer": observer})
    data = jpeg_bytes(product_rgb(320, 240))
    slow_write(d.path("incoming") / "shoes" / "red boot.jpg", data, chunks=10)
    finished_writing = time.time()
    wait_for(lambda: d.finished("done"))
    assert_png(d.path("output") / "shoes" / "red boot.png", (320, 240))
    assert (d.path("archive") / "shoes" / "red boot.jpg").read_bytes() == data
    assert all_files(d.path("incoming")) == []
    (done,) = d.finished()
    assert done["file"] == "shoes/red boot.jpg" and done["profile"] == "default"
    assert done["model"].startswith("tiny-u2netp.pth@") and done["width"] == 320 and done["duration_ms"] > 0
    assert time.mktime(time.strptime(done["ts"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone >= int(finished_writing)
    assert d.stop() == 0


@pytest.mark.parametrize("observer", OBSERVERS)
def test_temp_name_then_rename(daemon, observer: str) -> None:
    """rsync/WinSCP style: a temp name is ignored, the rename onto the final name is processed."""
    d: DaemonProcess = daemon(watcher={"observer": observer})
    incoming = d.path("incoming")
    slow_write(incoming / ".a.jpg.Xy12Zq", jpeg_bytes(), chunks=4)
    slow_write(incoming / "b.jpg.filepart", jpeg_bytes(), chunks=4)
    time.sleep(1.0)
    assert d.finished() == []
    os.rename(incoming / ".a.jpg.Xy12Zq", incoming / "a.jpg")
    os.rename(incoming / "b.jpg.filepart", incoming / "b.jpg")
    wait_for(lambda: len(d.finished("done")) == 2)
    assert published(d.path("output")) == ["a.png", "b.png"]
    assert d.stop() == 0


def test_files_present_at_start_are_processed(make_config) -> None:
    """The start-up scan picks up what arrived while the daemon was down."""
    config = make_config()
    incoming = config.parent / "incoming"
    for i in range(3):
        write(incoming / f"sub{i}" / f"p{i}.jpg", jpeg_bytes())
    d = DaemonProcess(config).start()
    try:
        wait_for(lambda: len(d.finished("done")) == 3)
        assert published(d.path("output")) == ["sub0/p0.png", "sub1/p1.png", "sub2/p2.png"]
    finally:
        assert d.stop() == 0


def test_bad_and_odd_inputs(daemon) -> None:
    """Bad inputs are quarantined with a reason, odd-but-valid ones processed; nothing is lost."""
    d: DaemonProcess = daemon()
    incoming = d.path("incoming")
    good = {
        "cmyk.jpg": cmyk_jpeg_bytes(),
        "deep.png": png16_rgb_bytes(np.full((30, 40, 3), 40000, np.uint16)),
        "rotated.jpg": exif_rotated_jpeg(),
        "palette.png": palette_png_bytes(),
        "ünïcode name (1).JPG": jpeg_bytes(),
        "-leading-dash.jpg": jpeg_bytes(),
        "no-extension": jpeg_bytes(),
    }
    bad = {
        "animated.webp": animated_bytes("WEBP"),
        "bomb.png": png_bomb_bytes(),
        "anim.gif": animated_bytes("GIF"),
        "empty.jpg": b"",
        "notes.txt": b"not an image\n",
    }  # refused at once: no image starts like these
    slow = {"truncated.jpg": jpeg_bytes()[:2000]}
    for name, data in {**good, **bad, **slow}.items():
        write(incoming / name, data)
    os.symlink("/etc/passwd", incoming / "link.jpg")
    wait_for(lambda: len(d.finished("done")) == len(good) and len(d.finished("quarantined")) == len(bad) + 1)
    assert_png(d.path("output") / "rotated.png", (100, 200))
    # a truncated image waits out decode_grace_s (3 s here) in place, then goes to quarantine
    assert all((incoming / name).exists() for name in slow)
    wait_for(lambda: len(d.finished("quarantined")) == len(bad) + 1 + len(slow), timeout=30)
    failed = d.path("failed")
    for name in [*bad, *slow, "link.jpg"]:
        report = json.loads((failed / f"{name}.error.json").read_text())
        assert report["reason"] and report["file"] == name
    assert (failed / "link.jpg").is_symlink()
    assert "symbolic link" in json.loads((failed / "link.jpg.error.json").read_text())["reason"]
    assert "exceeds engine.max_input_pixels" in json.loads((failed / "bomb.png.error.json").read_text())["reason"]
    assert "decode_grace_s" in json.loads((failed / "truncated.jpg.error.json").read_text())["note"]
    assert all_files(incoming) == []
    assert sorted(all_files(d.path("archive"))) == sorted(good)
    assert d.stop() == 0


def test_interrupted_upload_resumed_is_processed_once(daemon) -> None:
    """A partial file (client killed) waits in place; once resumed to the end it is processed once."""
    d: DaemonProcess = daemon(watcher={"decode_grace_s": 30.0})
    data = jpeg_bytes(product_rgb(400, 300))
    target = d.path("incoming") / "resumed.jpg"
    write(target, data[: len(data) // 3])
    wait_for(lambda: d.finished("waiting"))
    assert target.exists() and d.finished("done") == []
    with open(target, "ab") as f:  # like sftp 'reput': append to the same inode
        f.write(data[len(data) // 3 :])
    wait_for(lambda: d.finished("done"))
    time.sleep(1.5)  # a rescan passes: still exactly one output, one archive
    assert len(d.finished("done")) == 1
    assert (d.path("archive") / "resumed.jpg").read_bytes() == data
    assert d.stop() == 0


def test_new_upload_under_processed_name_is_a_new_version(daemon) -> None:
    """The same name uploaded again replaces the output; both originals are archived."""
    d: DaemonProcess = daemon()
    target = d.path("incoming") / "item.jpg"
    write(target, jpeg_bytes(product_rgb(200, 100, seed=1)))
    wait_for(lambda: d.finished("done"))
    first = (d.path("output") / "item.png").read_bytes()
    write(target, jpeg_bytes(product_rgb(120, 90, seed=2)))
    wait_for(lambda: len(d.finished("done")) == 2)
    assert (d.path("output") / "item.png").read_bytes() != first
    assert_png(d.path("output") / "item.png", (120, 90))
    assert len(all_files(d.path("archive"))) == 2
    assert d.stop() == 0


def test_kill9_during_burst_then_restart(make_config) -> None:
    """kill -9 mid-burst, restart: every input has one complete output and one archived original."""
    config = make_config()
    d = DaemonProcess(config).start()
    incoming = d.path("incoming")
    names = [f"burst-{i:03d}.jpg" for i in range(40)]
    for i, name in enumerate(names):
        write(incoming / name, jpeg_bytes(product_rgb(480, 360, seed=i)))
    wait_for(lambda: len(d.finished("done")) >= 5)
    d.kill9()
    assert 0 < len(all_files(incoming)) < len(names)
    d = DaemonProcess(config).start()
    try:
        wait_for(lambda: all_files(incoming) == [], timeout=90)
        assert all_files(d.path("archive")) == names
        assert published(d.path("output")) == [n.replace(".jpg", ".png") for n in names]
        for name in names:
            assert_png(d.path("output") / name.replace(".jpg", ".png"), (480, 360))
        assert all_files(d.path("failed")) == []
    finally:
        assert d.stop() == 0


def test_poison_file_is_quarantined_not_retried_forever(make_config) -> None:
    """A file that was in hand when the daemon died max_attempts times goes to quarantine."""
    config = make_config()
    incoming, state = config.parent / "incoming", config.parent / "state"
    path = write(incoming / "poison.jpg", jpeg_bytes())
    st = path.lstat()
    from unet_matting.watcher.intake.completion import Signature

    state.mkdir()
    key = attempt_key(Path("poison.jpg"), Signature.of(st))
    (state / "attempts.json").write_text(json.dumps({key: 2}))
    d = DaemonProcess(config).start()
    try:
        wait_for(lambda: d.finished("quarantined"))
        report = json.loads((config.parent / "failed" / "poison.jpg.error.json").read_text())
        assert "stopped 2 times" in report["reason"]
        assert json.loads((state / "attempts.json").read_text()) == {}
    finally:
        assert d.stop() == 0


def test_sigterm_finishes_the_file_in_hand(daemon) -> None:
    """SIGTERM during a job: the job completes (output and archive), then exit 0."""
    d: DaemonProcess = daemon(logging={"level": "debug"})
    write(d.path("incoming") / "big.jpg", jpeg_bytes(product_rgb(3000, 2000)))
    wait_for(lambda: d.events("job_started"), interval=0.01)
    assert d.stop(signal.SIGTERM) == 0
    assert d.finished("done") and (d.path("output") / "big.png").exists()
    assert (d.path("archive") / "big.jpg").exists()
    order = [
        e["event"]
        for e in d.log_lines()
        if e["event"] in ("job_started", "daemon_stopping", "job_finished", "daemon_stopped")
    ]
    assert order == ["job_started", "daemon_stopping", "job_finished", "daemon_stopped"]


@pytest.mark.parametrize("observer", OBSERVERS)
def test_symlinked_directory_is_not_followed(daemon, tmp_path: Path, observer: str) -> None:
    """A symlink to a directory elsewhere: files reached through it are neither read nor moved."""
    d: DaemonProcess = daemon(watcher={"observer": observer})
    outside = tmp_path / "outside"
    secret = write(outside / "secret.jpg", jpeg_bytes())
    os.symlink(outside, d.path("incoming") / "evil")
    write(d.path("incoming") / "evil" / "new.jpg", jpeg_bytes())
    write(d.path("incoming") / "control.jpg", jpeg_bytes())
    wait_for(lambda: d.finished("done") and d.finished("quarantined"))
    time.sleep(2.5)  # two periodic rescans pass
    outcomes = {e["file"]: e["outcome"] for e in d.finished()}
    assert outcomes.pop("control.jpg") == "done" and outcomes.pop("evil") == "quarantined"
    assert outcomes == {}, outcomes  # neither observer nor rescan reaches into the link
    assert secret.exists() and (outside / "new.jpg").exists()
    assert all_files(d.path("archive")) == ["control.jpg"] and (d.path("failed") / "evil").is_symlink()
    assert d.stop() == 0


def test_worker_refuses_a_path_through_a_symlinked_directory(tmp_path: Path) -> None:
    """Defence in depth: a job whose directory resolves outside incoming is refused."""
    from unet_matting.watcher.intake.jobs import Job
    from unet_matting.watcher.processing.runner import inside

    incoming, outside = tmp_path / "in", tmp_path / "outside"
    write(outside / "x.jpg", b"x")
    incoming.mkdir()
    os.symlink(outside, incoming / "link")
    assert not inside(incoming, Job(incoming / "link" / "x.jpg", Path("link/x.jpg")))
    write(incoming / "sub" / "y.jpg", b"y")
    assert inside(incoming, Job(incoming / "sub" / "y.jpg", Path("sub/y.jpg")))


def test_second_daemon_on_the_same_state_exits_at_once(daemon, make_config) -> None:
    """A second watch on the same paths.state fails fast naming the holder's pid; kill -9 frees the lock."""
    first = daemon()
    second = subprocess.run(
        [sys.executable, "-m", "unet_matting.watcher", "watch", "--config", str(first.config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert f"another unet-matting daemon (pid {first.proc.pid}) is already running" in second.stderr
    assert "Traceback" not in second.stderr
    first.kill9()
    again = daemon(first.config)
    assert again.proc.poll() is None
    assert again.stop() == 0


def test_non_images_are_quarantined_at_once_not_after_the_grace(daemon) -> None:
    """A text file named .jpg and an empty file are refused within seconds, though decode_grace_s is 900."""
    d: DaemonProcess = daemon(watcher={"decode_grace_s": 900.0})
    write(d.path("incoming") / "notes.jpg", b"this is a text file, not a photo\n")
    write(d.path("incoming") / "empty.png", b"")
    wait_for(lambda: len(d.finished("quarantined")) == 2, timeout=20)
    reasons = {e["file"]: e["error"] for e in d.finished("quarantined")}
    assert reasons == {
        "notes.jpg": "not a JPEG, PNG, WebP, TIFF, HEIC or AVIF file "
        "(it starts with 74 68 69 73 20 69 73 20 61 20 74 65)",
        "empty.png": "empty file (0 bytes)",
    }
    assert d.finished("waiting") == []
    assert d.stop() == 0


def test_same_stem_later_upload_replaces_and_says_so(daemon) -> None:
    """dup.jpg then dup.png share dup.png: the later wins, job_finished names the source it replaced, both archived."""
    d: DaemonProcess = daemon()
    write(d.path("incoming") / "dup.jpg", jpeg_bytes(product_rgb(120, 80, seed=1)))
    wait_for(lambda: d.finished("done"))
    write(d.path("incoming") / "dup.png", png16_rgb_bytes(product_rgb(90, 60, seed=2).astype(np.uint16) * 257))
    wait_for(lambda: len(d.finished("done")) == 2)
    second = d.finished("done")[1]
    assert second["file"] == "dup.png" and second["replaced"] == "dup.jpg"
    assert d.events("same_stem_replaced", file="dup.png", earlier_source="dup.jpg")
    assert "replaced" not in d.finished("done")[0]
    assert sorted(all_files(d.path("archive"))) == ["dup.jpg", "dup.png"]
    assert Image.open(d.path("output") / "dup.png").size == (90, 60)
    assert d.stop() == 0


def test_decode_grace_ends_on_time_not_at_the_next_rescan(daemon) -> None:
    """With rescans a minute apart, a truncated upload is quarantined when its 3 s grace ends, and says so."""
    d: DaemonProcess = daemon(watcher={"decode_grace_s": 3.0, "rescan_interval_s": 60.0})
    data = jpeg_bytes(product_rgb(300, 200))
    write(d.path("incoming") / "cut.jpg", data[: len(data) // 2])
    wait_for(lambda: d.finished("waiting"))
    started = time.monotonic()
    wait_for(lambda: d.finished("quarantined"), timeout=15)
    assert time.monotonic() - started < 10
    note = json.loads((d.path("failed") / "cut.jpg.error.json").read_text())["note"]
    assert note.startswith("still undecodable 3.") and note.endswith("(decode_grace_s = 3 s)")
    assert d.stop() == 0


def test_stalled_writer_with_the_file_open_is_not_processed_mid_upload(daemon) -> None:
    """A writer that sends a whole JPEG, pauses 3 s with the file open, then appends 50 KB (as phones
    do): processed once, after the close, from the whole file."""
    d: DaemonProcess = daemon()
    data = jpeg_bytes(product_rgb(300, 200))
    target = d.path("incoming") / "phone.jpg"
    with open(target, "wb") as f:
        f.write(data)
        f.flush()
        time.sleep(3.0)  # 10 quiet periods with stable stats, the file still open
        assert d.finished() == [], "processed while the writer still held the file open"
        f.write(os.urandom(50_000))
    wait_for(lambda: d.finished("done"))
    time.sleep(1.0)
    assert len(d.finished("done")) == 1
    assert d.finished("done")[0]["input_bytes"] == len(data) + 50_000
    assert (d.path("archive") / "phone.jpg").stat().st_size == len(data) + 50_000
    assert d.stop() == 0


# ---- the third operator trial (issue 19) --------------------------------------------------------


def without_dac_override() -> tuple[str, ...]:
    """A command prefix that runs the daemon without CAP_DAC_OVERRIDE/READ_SEARCH (root reads any file)."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop root's capabilities")
    caps = "-dac_override,-dac_read_search"
    return ("setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", "--")


def no_tracebacks(d: DaemonProcess) -> bool:
    return not [e for e in d.log_lines() if "exception" in e or "Traceback" in json.dumps(e)]


def test_an_unreadable_upload_waits_with_its_reason_then_is_quarantined(make_config) -> None:
    """A mode-000 upload is 'waiting' with the reason (one line, no traceback) and quarantined with an
    .error.json after decode_grace_s, like an undecodable one; a readable one beside it is done."""
    d = DaemonProcess(make_config(watcher={"decode_grace_s": 3.0}), prefix=without_dac_override()).start()
    try:
        locked = write(d.path("incoming") / "locked.jpg", jpeg_bytes())
        locked.chmod(0)
        write(d.path("incoming") / "fine.jpg", jpeg_bytes())
        wait_for(lambda: d.finished("quarantined"), 30)
        waiting = d.events("job_finished", file="locked.jpg", outcome="waiting")
        assert waiting and "the daemon may not read it (Permission denied" in waiting[0]["error"]
        report = json.loads((d.path("failed") / "locked.jpg.error.json").read_text())
        assert report["note"].startswith("still unreadable 3.")
        wait_for(lambda: d.events("job_finished", file="fine.jpg", outcome="done"))
        assert no_tracebacks(d)
    finally:
        assert d.stop() == 0


def test_a_full_output_disk_is_one_line_per_job_and_recovers(make_config, tmp_path: Path) -> None:
    """Uploads while the output disk is full end 'error' with the OS's reason in one line (no traceback)
    and stay in incoming; once space is freed the next rescan makes them."""
    from tests.conftest import small_tmpfs

    with small_tmpfs(tmp_path / "output", "64k") as out:
        filler = out / "filler"
        with open(filler, "wb") as f, contextlib.suppress(OSError):
            f.write(b"\0" * 200_000)
        d = DaemonProcess(make_config()).start()
        try:
            write(d.path("incoming") / "p.jpg", jpeg_bytes(product_rgb(160, 120)))
            wait_for(lambda: d.finished("error"))
            line = d.finished("error")[0]
            assert "No space left on device" in line["error"] and "errno 28" in line["error"]
            assert (d.path("incoming") / "p.jpg").exists() and no_tracebacks(d)
            filler.unlink()
            wait_for(lambda: d.finished("done"))
            assert (out / "p.png").is_file()
        finally:
            assert d.stop() == 0


def test_a_deleted_incoming_is_reported_and_watched_again_when_back(make_config) -> None:
    """rm -rf incoming: an incoming_missing error, /health 503 with the reason, status.json names it;
    mkdir again: incoming_restored, and a new upload is seen by inotify at once (not the 60 s rescan)."""
    from tests.conftest import free_port
    from tests.test_http import request

    port = free_port()
    d = DaemonProcess(make_config(watcher={"rescan_interval_s": 600.0}, http={"listen": f"127.0.0.1:{port}"})).start()
    try:
        shutil.rmtree(d.path("incoming"))
        wait_for(lambda: d.events("incoming_missing"), 15)
        status, body, _ = request(f"http://127.0.0.1:{port}/health")
        assert status == 503 and "incoming directory is missing" in json.loads(body)["reason"]
        assert str(d.path("incoming")) not in body.decode()
        wait_for(
            lambda: any(
                "is missing" in p for p in json.loads((d.path("state") / "status.json").read_text())["problems"]
            )
        )
        d.path("incoming").mkdir()
        wait_for(lambda: d.events("incoming_restored"), 15)
        time.sleep(0.5)
        slow_write(d.path("incoming") / "sub" / "back.jpg", jpeg_bytes())
        wait_for(lambda: d.events("job_finished", file="sub/back.jpg", outcome="done"), 20)
        assert request(f"http://127.0.0.1:{port}/health")[0] == 200
    finally:
        assert d.stop() == 0


def test_an_active_model_outside_models_dir_is_refused(make_config, tmp_path: Path) -> None:
    """active_model naming ../../../etc/passwd: watch exits 2 with the reason before opening its HTTP
    port; written while the daemon runs, it is refused and the model in use stays."""
    from tests.conftest import free_port, save_tiny_model
    from tests.test_cli import run

    models = tmp_path / "models"
    save_tiny_model(models / "first.pth")
    (models / "active_model").write_text("../../../etc/passwd\n")
    port = free_port()
    config = make_config(engine={"model": "auto", "models_dir": str(models)}, http={"listen": f"127.0.0.1:{port}"})
    result = run("watch", "--config", str(config))
    assert result.returncode == 2 and "names ../../../etc/passwd, which is not a file name" in result.stderr
    (models / "active_model").write_text("nonesuch.pth\n")
    result = run("watch", "--config", str(config))
    assert result.returncode == 2 and "nonesuch.pth, is not installed" in result.stderr
    assert not matching(read_log(tmp_path / "log" / "unet-matting.log"), "http_listening")
    (models / "active_model").write_text("first.pth\n")
    d = DaemonProcess(config).start()
    try:
        (models / "active_model").write_text("../../../etc/passwd\n")
        wait_for(lambda: d.events("model_load_failed"), 15)
        assert "not a file name" in d.events("model_load_failed")[0]["error"]
        write(d.path("incoming") / "p.jpg", jpeg_bytes())
        wait_for(lambda: d.finished("done"))
        assert d.finished("done")[0]["model"].startswith("first.pth@")
    finally:
        assert d.stop() == 0


def test_a_white_product_on_white_is_published_whole(daemon, tmp_path: Path) -> None:
    """Issue 21 end to end: a network that sees only the print of a white box on white (as IS-Net
    does on a white bag) still gives the shop the whole box under ecom_product: engine.backdrop
    auto completes the matte; with it off, the same upload comes out as the floating logo."""
    model = save_print_model(tmp_path / "print-u2netp.pth")
    rgb, box, _ = studio_packshot(480, 400, shadow=0.3)
    data = jpeg_bytes(rgb, quality=95)
    ys, xs = np.nonzero(box)
    box_h, box_w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    sizes = {}
    for mode in ("auto", "off"):
        d: DaemonProcess = daemon(
            engine={"model": str(model), "input_size": 320, "backdrop": mode},
            profile="ecom_product",
            paths={k: str(tmp_path / mode / k) for k in ("incoming", "output", "archive", "failed", "state")},
            logging={"file": str(tmp_path / mode / "unet-matting.log")},
        )
        (d.path("incoming") / "white box.jpg").write_bytes(data)
        wait_for(lambda d=d: d.finished("done"))
        with Image.open(d.path("output") / "white box.png") as im:
            rgba = np.asarray(im.convert("RGBA"))
        alpha = rgba[..., 3]
        visible = np.nonzero(alpha > 127)
        sizes[mode] = (visible[0].max() - visible[0].min() + 1, visible[1].max() - visible[1].min() + 1)
        if mode == "auto":  # the whole box, opaque: its white body is there, not only its logo
            assert (alpha[visible] == 255).mean() > 0.95
        assert d.stop() == 0
    assert abs(sizes["auto"][0] - box_h) <= 0.04 * box_h and abs(sizes["auto"][1] - box_w) <= 0.04 * box_w
    assert sizes["off"][0] < box_h / 2 and sizes["off"][1] < box_w / 2  # the floating logo
