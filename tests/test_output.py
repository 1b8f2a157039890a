"""Durable output: atomic writes, archive names that never overwrite, quarantine reports."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import small_tmpfs
from unet_matting.watcher.durable import atomic_write, remove_stale_temps
from unet_matting.watcher.processing import output
from unet_matting.watcher.processing.output import move_durably, output_path, quarantine, unique_path, write_outputs


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    """The target holds the old or the new bytes, and no temp file stays behind."""
    target = tmp_path / "out" / "a.png"
    atomic_write(target, b"first")
    atomic_write(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["a.png"]
    assert oct(target.stat().st_mode & 0o777) == "0o644"


def test_atomic_write_failure_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure during the write (here: fsync) leaves the previous output and no temp."""
    target = tmp_path / "a.png"
    atomic_write(target, b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


def test_stale_temps_are_removed(tmp_path: Path) -> None:
    """Temp files a crash left behind are cleaned at start-up; real outputs are not touched."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / f"{output.TEMP_PREFIX}abc.tmp").write_bytes(b"half")
    (tmp_path / "sub" / "real.png").write_bytes(b"png")
    assert remove_stale_temps(tmp_path) == 1
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["real.png"]


def test_output_path_mirrors_subfolders(tmp_path: Path) -> None:
    """incoming/shoes/red boot.JPG becomes output/shoes/red boot.png."""
    assert output_path(tmp_path, Path("shoes/red boot.JPG")) == tmp_path / "shoes" / "red boot.png"


def test_archive_never_overwrites(tmp_path: Path) -> None:
    """A second original under the same name is archived beside the first with a suffix."""
    incoming, archive = tmp_path / "in", tmp_path / "archive"
    incoming.mkdir()
    for content in (b"v1", b"v2", b"v3"):
        (incoming / "a.jpg").write_bytes(content)
        move_durably(incoming / "a.jpg", archive, Path("a.jpg"))
    names = sorted(p.name for p in archive.iterdir())
    assert len(names) == 3 and "a.jpg" in names and all(n.startswith("a.") and n.endswith(".jpg") for n in names)
    assert sorted(p.read_bytes() for p in archive.iterdir()) == [b"v1", b"v2", b"v3"]


def test_move_across_filesystems(tmp_path: Path) -> None:
    """Across filesystems (tmpfs /dev/shm here) the move is copy, fsync, unlink."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem")
    source = shm / f"unet-matting-test-{os.getpid()}.jpg"
    source.write_bytes(b"original bytes")
    moved = move_durably(source, tmp_path / "archive", Path("x/a.jpg"))
    assert moved.read_bytes() == b"original bytes" and not source.exists()


def test_unique_path_keeps_suffix(tmp_path: Path) -> None:
    """Collision names keep the extension so archived files still open by type."""
    (tmp_path / "a.tar.jpg").write_bytes(b"")
    assert unique_path(tmp_path / "a.tar.jpg").suffix == ".jpg"


def test_quarantine_writes_reason_beside_the_file(tmp_path: Path) -> None:
    """The failed file moves under failed/ with <name>.error.json saying why."""
    incoming = tmp_path / "in" / "sub"
    incoming.mkdir(parents=True)
    (incoming / "bad.jpg").write_bytes(b"junk")
    target = quarantine(
        incoming / "bad.jpg",
        tmp_path / "failed",
        Path("sub/bad.jpg"),
        {"error": "ImageError", "reason": "not an image"},
    )
    assert target == tmp_path / "failed" / "sub" / "bad.jpg" and target.read_bytes() == b"junk"
    report = json.loads((tmp_path / "failed" / "sub" / "bad.jpg.error.json").read_text())
    assert report["reason"] == "not an image" and report["file"] == "sub/bad.jpg"


def test_output_set_appears_whole_or_not_at_all_on_a_full_disk(tmp_path: Path) -> None:
    """On a full tmpfs the white JPEG is not left without its PNG: nothing of the set appears, no temp stays."""
    with small_tmpfs(tmp_path / "out", "256k") as out:
        files = {".jpg": b"j" * 10_000, ".png": os.urandom(400_000)}
        with pytest.raises(OSError, match="No space left"):
            write_outputs(out, Path("shop/item.jpg"), files)
        assert [p for p in out.rglob("*") if p.is_file()] == []
        written = write_outputs(out, Path("shop/item.jpg"), {".jpg": b"j" * 10_000, ".png": b"p" * 10_000})
        assert [p.name for p in written] == ["item.jpg", "item.png"]
