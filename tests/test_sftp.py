"""Real SFTP uploads through a real OpenSSH sshd on 127.0.0.1 into a running daemon."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DaemonProcess, wait_for
from tests.images import jpeg_bytes, product_rgb, write
from tests.sshd import SshServer, can_run_sshd

pytestmark = pytest.mark.slow
_why_not = can_run_sshd()
if _why_not and not os.environ.get("CI"):
    pytestmark = [pytestmark, pytest.mark.skip(reason=_why_not)]


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    server = SshServer(tmp_path / "sshd").start()
    yield server
    server.stop()


def noisy_jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """Noise compresses badly: a few hundred KB, so a rate-limited upload takes seconds."""
    import numpy as np

    rgb = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return jpeg_bytes(rgb, quality=95)


def test_put_overwrite_and_rename(daemon, sshd: SshServer, tmp_path: Path) -> None:
    """sftp put, a second put over the same name, and put-to-temp-then-rename all land once each."""
    d: DaemonProcess = daemon()
    incoming = d.path("incoming")
    v1 = write(tmp_path / "v1.jpg", jpeg_bytes(product_rgb(200, 150, seed=1)))
    v2 = write(tmp_path / "v2.jpg", jpeg_bytes(product_rgb(160, 120, seed=2)))
    sshd.sftp([f"put {v1} {incoming}/item.jpg"])
    wait_for(lambda: d.finished("done"))
    sshd.sftp([f"put {v2} {incoming}/item.jpg"])
    wait_for(lambda: len(d.finished("done")) == 2)
    sshd.sftp([f"put {v1} {incoming}/.renamed.jpg.part", f"rename {incoming}/.renamed.jpg.part {incoming}/renamed.jpg"])
    wait_for(lambda: len(d.finished("done")) == 3)
    archived = sorted(p.read_bytes() for p in d.path("archive").iterdir())
    assert archived == sorted([v1.read_bytes(), v2.read_bytes(), v1.read_bytes()])
    made = ["item.json", "item.png", "renamed.json", "renamed.png"]  # each cut-out with its manifest
    assert sorted(p.name for p in d.path("output").iterdir()) == made
    assert [e["file"] for e in d.finished()] == ["item.jpg", "item.jpg", "renamed.jpg"]
    assert d.stop() == 0


def test_slow_upload_is_processed_once_when_complete(daemon, sshd: SshServer, tmp_path: Path) -> None:
    """A rate-limited upload (~3 s, pauses longer than the quiet period) yields one complete output."""
    d: DaemonProcess = daemon(watcher={"decode_grace_s": 60.0})
    data = noisy_jpeg(1200, 900)  # ~1 MB; sftp -l lets about a second's worth through at once
    local = write(tmp_path / "slow.jpg", data)
    started = time.monotonic()
    sshd.sftp([f"put {local} {d.path('incoming')}/slow.jpg"], limit_kbit=len(data) * 8 // 4000)
    assert time.monotonic() - started > 1.5, "upload was not slow"
    wait_for(lambda: d.finished("done"))
    time.sleep(1.5)
    assert len(d.finished("done")) == 1
    assert (d.path("archive") / "slow.jpg").read_bytes() == data


def test_killed_client_then_reput(daemon, sshd: SshServer, tmp_path: Path) -> None:
    """Client killed mid-upload: the partial file (CLOSE_WRITE fired) waits; 'reput' completes it."""
    d: DaemonProcess = daemon(watcher={"decode_grace_s": 120.0})
    data = noisy_jpeg(1200, 900, seed=3)
    local = write(tmp_path / "big.jpg", data)
    remote = d.path("incoming") / "big.jpg"
    client = sshd.sftp([f"put {local} {remote}"], limit_kbit=len(data) * 8 // 8000, background=True)
    wait_for(lambda: remote.exists() and 0 < remote.stat().st_size < len(data) // 2)
    client.kill()
    client.wait(10)
    client.stderr.close()
    partial = remote.stat().st_size
    assert 0 < partial < len(data)
    wait_for(lambda: d.finished("waiting"), timeout=30)
    assert remote.exists() and d.finished("done") == []
    sshd.sftp([f"reput {local} {remote}"])
    wait_for(lambda: d.finished("done"))
    assert (d.path("archive") / "big.jpg").read_bytes() == data
    assert len(d.finished("done")) == 1 and d.finished("quarantined") == []
    assert d.stop() == 0


def test_burst_of_200_uploads(daemon, sshd: SshServer, tmp_path: Path) -> None:
    """200 files in one sftp session: 200 outputs, 200 archived originals, no failures."""
    d: DaemonProcess = daemon()
    local = tmp_path / "burst"
    names = [f"sku-{i:03d}.jpg" for i in range(200)]
    for i, name in enumerate(names):
        write(local / name, jpeg_bytes(product_rgb(96, 72, seed=i)))
    sshd.sftp([f"mkdir {d.path('incoming')}/season", f"put {local}/* {d.path('incoming')}/season/"])
    wait_for(lambda: len(d.finished("done")) == 200, timeout=240)
    assert sorted(p.name for p in (d.path("archive") / "season").iterdir()) == names
    assert len(list((d.path("output") / "season").glob("*.png"))) == 200
    assert len(list((d.path("output") / "season").glob("*.json"))) == 200
    assert len(d.finished()) == 200
    assert d.stop() == 0


def test_real_rsync_temp_file_then_rename(daemon, sshd: SshServer, tmp_path: Path) -> None:
    """rsync writes .name.XXXXXX and renames it: only the final name is processed, once."""
    d: DaemonProcess = daemon()
    local = write(tmp_path / "synced.jpg", noisy_jpeg(300, 200, seed=5))
    sshd.rsync(local, d.path("incoming"))
    wait_for(lambda: d.finished("done"))
    time.sleep(1.0)
    assert [e["file"] for e in d.finished()] == ["synced.jpg"]
    assert (d.path("archive") / "synced.jpg").read_bytes() == local.read_bytes()
    assert d.stop() == 0
