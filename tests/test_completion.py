"""The completion tracker with a fake clock and fake stats."""

from __future__ import annotations

import os
from pathlib import Path, PurePath

from unet_matting.watcher.intake.completion import CompletionTracker, IgnoreRules


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeFiles:
    """stat() results keyed by path; a missing path raises FileNotFoundError like os.lstat."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, int, int, int]] = {}

    def set(self, path: str, size: int, mtime_ns: int = 1, inode: int = 7, ctime_ns: int = 1) -> None:
        self.files[path] = (size, mtime_ns, inode, ctime_ns)

    def stat(self, path: str) -> os.stat_result:
        if path not in self.files:
            raise FileNotFoundError(path)
        size, mtime, inode, ctime = self.files[path]
        return os.stat_result((0o100644, inode, 0, 1, 0, 0, size, 0, 0, 0, 0, 0, 0, mtime, 0, ctime))


def make() -> tuple[CompletionTracker, FakeClock, FakeFiles]:
    clock, files = FakeClock(), FakeFiles()
    return CompletionTracker(2.0, clock, files.stat), clock, files


def test_ready_after_quiet_period_with_same_stat() -> None:
    """A file untouched for the quiet period, with an unchanged stat, is ready exactly once."""
    tracker, clock, files = make()
    files.set("/in/a.jpg", 100)
    tracker.touch("/in/a.jpg")
    clock.now += 1.9
    assert tracker.ready() == []
    clock.now += 0.2
    assert tracker.ready() == ["/in/a.jpg"]
    assert tracker.ready() == [] and len(tracker) == 0


def test_every_event_restarts_the_quiet_period() -> None:
    """A slow upload that keeps sending events is never ready while it is written."""
    tracker, clock, files = make()
    for second in range(10):
        files.set("/in/slow.jpg", 100 * second, mtime_ns=second)
        tracker.touch("/in/slow.jpg")
        clock.now += 1.5
        assert tracker.ready() == []
    clock.now += 2.0
    assert tracker.ready() == ["/in/slow.jpg"]


def test_growth_without_events_defers_readiness() -> None:
    """Polling observers miss events: a changed stat at the deadline starts another period."""
    tracker, clock, files = make()
    files.set("/in/nfs.jpg", 10, mtime_ns=1)
    tracker.touch("/in/nfs.jpg")
    files.set("/in/nfs.jpg", 20, mtime_ns=2)
    clock.now += 2.1
    assert tracker.ready() == []
    clock.now += 2.1
    assert tracker.ready() == ["/in/nfs.jpg"]


def test_ctime_or_inode_change_defers_readiness() -> None:
    """Same size and mtime but a replaced inode (rename over) is not yet settled."""
    tracker, clock, files = make()
    files.set("/in/r.jpg", 10, inode=1)
    tracker.touch("/in/r.jpg")
    files.set("/in/r.jpg", 10, inode=2)
    clock.now += 2.1
    assert tracker.ready() == []


def test_vanished_file_is_forgotten() -> None:
    """A temp file renamed away or deleted before its deadline leaves the tracker quietly."""
    tracker, clock, files = make()
    files.set("/in/x.jpg", 10)
    tracker.touch("/in/x.jpg")
    del files.files["/in/x.jpg"]
    clock.now += 3
    assert tracker.ready() == [] and len(tracker) == 0


def test_next_deadline_is_the_earliest() -> None:
    """The intake thread sleeps until the earliest deadline."""
    tracker, clock, files = make()
    assert tracker.next_deadline() is None
    files.set("/a", 1)
    files.set("/b", 1)
    tracker.touch("/a")
    clock.now += 1
    tracker.touch("/b")
    assert tracker.next_deadline() == 1002.0


def test_ignore_rules_match_temp_names_in_any_component() -> None:
    """Client temp names and hidden directories are ignored, case-insensitively."""
    rules = IgnoreRules([".*", "*.filepart", "*.part", "~*", "*.tmp"])
    for name in [".a.jpg.XyZ12", "a.JPG.FILEPART", "a.part", "~lock.jpg", ".hidden/a.jpg", "sub/x.tmp"]:
        assert rules.ignored(PurePath(name)), name
    for name in ["a.jpg", "sub dir/é.png", "part.jpg"]:
        assert not rules.ignored(PurePath(name)), name


def test_a_file_held_open_is_not_ready_until_closed(tmp_path: Path) -> None:
    """Stable stats are not enough while some process holds the file open; a close releases it."""
    clock = FakeClock()
    path = tmp_path / "a.jpg"
    path.write_bytes(b"x")
    tracker = CompletionTracker(1.0, clock)
    tracker.opened(str(path), +1)
    tracker.touch(str(path))
    clock.now += 5
    assert tracker.ready() == []
    tracker.opened(str(path), -1)
    clock.now += 1.1
    assert tracker.ready() == [str(path)]


def test_held_open_counts_recover_from_lost_events(tmp_path: Path) -> None:
    """Closes of opens never seen do not go negative; an open whose close was lost stops holding after the cap."""
    clock = FakeClock()
    path = tmp_path / "a.jpg"
    path.write_bytes(b"x")
    tracker = CompletionTracker(1.0, clock, max_held_open_s=30)
    tracker.opened(str(path), -1)
    tracker.opened(str(path), +1)
    tracker.touch(str(path))
    clock.now += 2
    assert tracker.ready() == []
    clock.now += 31
    assert tracker.ready() == [str(path)]
