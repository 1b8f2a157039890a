"""The review queue on real files: hold, approve, reject, recovery after a kill, races, bad ids."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import small_tmpfs, wait_for
from unet_matting.watcher.review.queue import ReviewError, ReviewQueue, item_id, record_for

REPO = Path(__file__).resolve().parent.parent


def png(seed: int = 0, side: int = 64) -> bytes:
    rng = np.random.default_rng(seed)
    rgba = rng.integers(0, 256, (side, side, 4), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, "PNG")
    return out.getvalue()


def make_queue(root: Path) -> ReviewQueue:
    return ReviewQueue(root / "review", root / "output", root / "failed", root / "state")


def hold(queue: ReviewQueue, name: str = "shop-a/mug.jpg", seed: int = 0, side: int = 64, jpeg: bool = True):
    files = {".png": png(seed, side)}
    if jpeg:
        files[".jpg"] = b"\xff\xd8 a JPEG"
    record = record_for(0.31, ("large unsure region",), Path(name).name, "0" * 64, "tiny@1", "ecom_product")
    return queue.hold(Path(name), files, record), files


def test_a_held_item_is_its_output_set_and_a_record_written_last(tmp_path: Path) -> None:
    queue = make_queue(tmp_path)
    held, files = hold(queue)
    assert held.id == "shop-a/mug" == item_id(Path("shop-a/mug.jpg"))
    folder = tmp_path / "review" / "shop-a"
    assert (folder / "mug.png").read_bytes() == files[".png"]
    assert (folder / "mug.jpg").read_bytes() == files[".jpg"]
    record = json.loads((folder / "mug.review.json").read_text())
    assert record["score"] == 0.31 and record["reasons"] == ["large unsure region"]
    assert record["files"] == {".png": "mug.png", ".jpg": "mug.jpg"}
    assert record["source"] == {"name": "mug.jpg", "sha256": "0" * 64}
    assert [h.id for h in queue.items()] == ["shop-a/mug"] and queue.count() == 1
    assert not (tmp_path / "output").exists()  # nothing public


def test_a_later_upload_replaces_the_held_item_whole(tmp_path: Path) -> None:
    queue = make_queue(tmp_path)
    hold(queue, seed=1)
    _, files = hold(queue, name="shop-a/mug.png", seed=2, jpeg=False)  # another profile: no JPEG
    folder = tmp_path / "review" / "shop-a"
    assert (folder / "mug.png").read_bytes() == files[".png"]
    assert not (folder / "mug.jpg").exists()  # the earlier version's JPEG is not left to be approved
    assert queue.count() == 1


def test_approve_publishes_the_set_and_the_item_is_no_longer_held(tmp_path: Path) -> None:
    decided: list[str] = []
    queue = ReviewQueue(
        tmp_path / "review", tmp_path / "output", tmp_path / "failed", tmp_path / "state", decided.append
    )
    _, files = hold(queue)
    published = queue.approve("shop-a/mug", "cli")
    assert sorted(p.name for p in published) == ["mug.jpg", "mug.png"]
    assert (tmp_path / "output/shop-a/mug.png").read_bytes() == files[".png"]
    assert (tmp_path / "output/shop-a/mug.jpg").read_bytes() == files[".jpg"]
    assert queue.items() == [] and not any((tmp_path / "review/shop-a").iterdir())
    assert decided == ["approve"]
    with pytest.raises(ReviewError, match="no longer held") as err:
        queue.approve("shop-a/mug", "cli")
    assert err.value.status == 409


def test_reject_moves_the_cut_out_to_failed_with_the_reason(tmp_path: Path) -> None:
    queue = make_queue(tmp_path)
    hold(queue)
    target = queue.reject("shop-a/mug", "reviewer", "the fork is kept")
    assert target == tmp_path / "failed/shop-a/mug.png"
    report = json.loads((tmp_path / "failed/shop-a/mug.png.error.json").read_text())
    assert report["reason"] == "rejected in review: the fork is kept"
    assert report["by"] == "reviewer" and report["score"] == 0.31
    assert (tmp_path / "failed/shop-a/mug.jpg").exists()
    assert queue.items() == [] and not (tmp_path / "output").exists()


def test_two_reviewers_approving_at_once_publish_once(tmp_path: Path) -> None:
    queue = make_queue(tmp_path)
    hold(queue)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def approve() -> None:
        barrier.wait()
        try:
            make_queue(tmp_path).approve("shop-a/mug", "api")
            results.append("published")
        except ReviewError as e:
            results.append(f"{e.status}")

    threads = [threading.Thread(target=approve) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["409"] * 7 + ["published"]


def test_another_process_deciding_the_same_item_waits_for_the_lock(tmp_path: Path) -> None:
    """The CLI and the daemon are two processes: the item lock is an flock, not a thread lock."""
    queue = make_queue(tmp_path)
    hold(queue)
    script = (
        "import sys; from pathlib import Path; from tests.test_review import make_queue\n"
        "from unet_matting.watcher.review.queue import ReviewError\n"
        "try:\n    make_queue(Path(sys.argv[1])).approve('shop-a/mug', 'cli'); print('published')\n"
        "except ReviewError as e:\n    print(e.status)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = sorted(p.communicate(timeout=60)[0].strip().splitlines()[-1] for p in procs)
    assert outputs == ["409", "409", "409", "published"]


@pytest.mark.parametrize(
    "bad", ["../etc/passwd", "shop-a/../../x", "/abs/path", "shop-a/.hidden", "", "shop-a//mug", "a\0b"]
)
def test_ids_that_leave_the_review_folder_are_refused(tmp_path: Path, bad: str) -> None:
    queue = make_queue(tmp_path)
    hold(queue)
    with pytest.raises(ReviewError) as err:
        queue.approve(bad, "api")
    assert err.value.status == 400
    assert not (tmp_path / "output").exists()


def test_an_item_behind_a_symlink_in_the_review_folder_is_refused(tmp_path: Path) -> None:
    queue = make_queue(tmp_path)
    elsewhere = make_queue(tmp_path / "elsewhere")
    hold(elsewhere, name="secret/mug.jpg")
    (tmp_path / "review").mkdir(parents=True)
    (tmp_path / "review" / "link").symlink_to(tmp_path / "elsewhere" / "review" / "secret")
    with pytest.raises(ReviewError, match="symbolic link") as err:
        queue.approve("link/mug", "api")
    assert err.value.status == 400
    assert not (tmp_path / "output").exists()
    record = tmp_path / "review" / "shop-a" / "mug.review.json"
    hold(queue)
    record.unlink()
    record.symlink_to(tmp_path / "elsewhere" / "review" / "secret" / "mug.review.json")
    with pytest.raises(ReviewError, match="symbolic link"):
        queue.approve("shop-a/mug", "api")


def test_a_full_disk_while_approving_leaves_the_item_held_with_a_clear_error(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "output", "64k"):
        queue = make_queue(tmp_path)
        _, files = hold(queue, side=256)  # a noise PNG of ~260 kB: more than the output disk holds
        with pytest.raises(ReviewError) as err:
            queue.approve("shop-a/mug", "api")
        assert err.value.status == 507
        assert "stays held" in str(err.value) and "No space left on device" in str(err.value)
        assert "Traceback" not in str(err.value)
        assert [h.id for h in queue.items()] == ["shop-a/mug"]
        assert (tmp_path / "review/shop-a/mug.png").read_bytes() == files[".png"]
        assert list((tmp_path / "output").rglob("*")) in ([], [tmp_path / "output/shop-a"])  # no partial file
        assert not list((tmp_path / "state/review-journal").glob("*.json"))


KILLED_APPROVE = """
import os, sys, time
from pathlib import Path
from tests.test_review import make_queue
import unet_matting.watcher.review.queue as q
real = q.write_outputs
def stalled(root, relative, files):
    Path(sys.argv[2]).write_text("decided")  # the journal is on disk; nothing is published yet
    time.sleep(60)
    return real(root, relative, files)
q.write_outputs = stalled
make_queue(Path(sys.argv[1])).approve("shop-a/mug", "cli")
"""


def test_kill_9_between_decided_and_published_finishes_on_restart(tmp_path: Path) -> None:
    queue = make_queue(tmp_path)
    _, files = hold(queue)
    marker = tmp_path / "decided"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_APPROVE, str(tmp_path), str(marker)], cwd=REPO)
    try:
        wait_for(marker.exists, timeout=60)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert not (tmp_path / "output/shop-a/mug.png").exists()  # killed before it published
    assert [h.id for h in queue.items()] == ["shop-a/mug"]  # still held until the journal is replayed
    assert make_queue(tmp_path).recover() == 1  # what the daemon and the CLI do at start
    assert (tmp_path / "output/shop-a/mug.png").read_bytes() == files[".png"]
    assert (tmp_path / "output/shop-a/mug.jpg").read_bytes() == files[".jpg"]
    assert queue.items() == [] and not (tmp_path / "review/shop-a/mug.png").exists()


@pytest.mark.parametrize("stage", ["published", "record_removed", "half_the_files_removed"])
def test_a_crash_at_any_later_step_of_approve_ends_published_on_replay(tmp_path: Path, stage: str) -> None:
    queue = make_queue(tmp_path)
    held, files = hold(queue)
    journal = queue._write_journal(held, "approve", "cli")  # decided, as approve writes it first
    queue._publish(held)
    if stage in ("record_removed", "half_the_files_removed"):
        held.record_path.unlink()
    if stage == "half_the_files_removed":
        held.file(".jpg").unlink()
    assert journal.exists()
    assert make_queue(tmp_path).recover() == 1
    assert (tmp_path / "output/shop-a/mug.png").read_bytes() == files[".png"]
    assert (tmp_path / "output/shop-a/mug.jpg").read_bytes() == files[".jpg"]
    assert queue.items() == [] and not list((tmp_path / "review/shop-a").iterdir())
    assert not journal.exists()


def test_a_published_upload_of_the_same_stem_discards_the_stale_held_one(tmp_path: Path) -> None:
    queue = make_queue(tmp_path)
    hold(queue)
    assert queue.discard(Path("shop-a/mug.png")) is True
    assert queue.items() == [] and not list((tmp_path / "review/shop-a").iterdir())
    assert queue.discard(Path("shop-a/mug.png")) is False


def test_os_errors_are_sentences(tmp_path: Path) -> None:
    from unet_matting.watcher.errors import os_reason

    assert os_reason(OSError(errno.ENOSPC, "No space left on device", "/x/y")) == (
        "No space left on device (/x/y) (errno 28)"
    )


def test_old_thumbnails_are_pruned_when_a_new_one_is_made(tmp_path: Path) -> None:
    from unet_matting.watcher.api.review import THUMB_MAX_AGE_S, prune_thumbnails

    old, fresh = tmp_path / "old.jpg", tmp_path / "fresh.jpg"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    stale = time.time() - THUMB_MAX_AGE_S - 60
    os.utime(old, (stale, stale))
    assert prune_thumbnails(tmp_path) == 1
    assert not old.exists() and fresh.exists()
    assert prune_thumbnails(tmp_path / "absent") == 0
