"""The intake thread's logic, driven in-process: hints, scans, overflow, busy paths."""

from __future__ import annotations

import logging
import queue
from pathlib import Path

from tests.images import write
from unet_matting.watcher.intake.completion import CompletionTracker, IgnoreRules
from unet_matting.watcher.intake.feeder import Intake, IntakeSettings
from unet_matting.watcher.intake.jobs import Job, JobQueue
from unet_matting.watcher.intake.observer import Hint, HintHandler, OverflowHook


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path) -> tuple[Intake, Clock, JobQueue]:
    clock, jobs = Clock(), JobQueue()
    tracker = CompletionTracker(1.0, clock)
    settings = IntakeSettings(IgnoreRules([".*", "*.part"]), 60.0, tracker.quiet_period_s)
    intake = Intake(tmp_path, queue.SimpleQueue(), tracker, jobs, lambda: settings, clock)
    return intake, clock, jobs


def drain(jobs: JobQueue) -> list[str]:
    out = []
    while (job := jobs.get(0)) is not None:
        out.append(str(job.relative))
        jobs.done(job)
    return out


def test_overflow_warning_triggers_a_rescan(tmp_path: Path) -> None:
    """watchdog's 'Inotify queue overflowed' warning makes intake walk incoming and find lost files."""
    intake, clock, jobs = make(tmp_path)
    write(tmp_path / "lost" / "a.jpg", b"x")
    hook = OverflowHook(lambda: intake.request_rescan("inotify_overflow"))
    logger = logging.getLogger("watchdog.observers")
    logger.addHandler(hook)
    try:
        logging.getLogger("watchdog.observers.inotify_c").warning("Inotify queue overflowed; events were lost")
    finally:
        logger.removeHandler(hook)
    intake.run_once()
    clock.now += 1.1
    intake.run_once()
    assert drain(jobs) == ["lost/a.jpg"]


def test_temp_names_and_outside_paths_are_ignored(tmp_path: Path) -> None:
    """Hints for temp names or paths outside incoming never become jobs."""
    intake, clock, jobs = make(tmp_path)
    for name in ("x.jpg.part", ".x.jpg.123", "ok.jpg"):
        write(tmp_path / name, b"x")
        intake.hints.put(Hint(str(tmp_path / name)))
    intake.hints.put(Hint("/etc/passwd"))
    intake.run_once()
    clock.now += 1.1
    intake.run_once()
    assert drain(jobs) == ["ok.jpg"]


def test_busy_path_is_deferred_not_duplicated(tmp_path: Path) -> None:
    """A path already queued or in hand is not queued twice; it is looked at again later."""
    intake, clock, jobs = make(tmp_path)
    path = write(tmp_path / "a.jpg", b"x")
    assert jobs.put(Job(path, Path("a.jpg")))
    intake.hints.put(Hint(str(path)))
    intake.run_once()
    clock.now += 1.1
    intake.run_once()
    assert jobs.depth() == 1 and str(path) in intake.tracker


def test_directory_moved_in_is_scanned(tmp_path: Path) -> None:
    """Files inside a directory moved into incoming send no events; the dir hint scans them."""
    from watchdog.events import DirMovedEvent

    intake, clock, jobs = make(tmp_path)
    write(tmp_path / "batch" / "a.jpg", b"x")
    write(tmp_path / "batch" / "deeper" / "b.jpg", b"x")
    HintHandler(intake.hints).dispatch(DirMovedEvent("/elsewhere/batch", str(tmp_path / "batch")))
    intake.run_once()
    clock.now += 1.1
    intake.run_once()
    assert sorted(drain(jobs)) == ["batch/a.jpg", "batch/deeper/b.jpg"]


def test_handler_counts_opens_without_touching_and_ignores_deletions() -> None:
    """Opens and closes only count handles (a read restarts no quiet period); a close after writing
    also touches; deletions produce nothing."""
    from watchdog.events import FileClosedEvent, FileClosedNoWriteEvent, FileDeletedEvent, FileOpenedEvent

    hints: queue.SimpleQueue = queue.SimpleQueue()
    handler = HintHandler(hints)
    for event in (
        FileOpenedEvent("/i/a"),
        FileClosedNoWriteEvent("/i/a"),
        FileDeletedEvent("/i/a"),
        FileClosedEvent("/i/a"),
    ):
        handler.dispatch(event)
    got = [hints.get_nowait() for _ in range(3)]
    assert hints.empty()
    assert got == [Hint("/i/a", touch=False, opens=1), Hint("/i/a", touch=False, opens=-1), Hint("/i/a", opens=-1)]


def test_new_settings_apply_at_the_next_pass(tmp_path: Path) -> None:
    """A reload publishes new IntakeSettings; the intake thread takes them whole on its next pass."""
    clock = Clock()
    tracker = CompletionTracker(1.0, clock)
    current = [IntakeSettings(IgnoreRules([".*"]), 60.0, 1.0)]
    intake = Intake(tmp_path, queue.SimpleQueue(), tracker, JobQueue(), lambda: current[0], clock)
    assert intake.relative(str(tmp_path / "a.part")) is not None
    current[0] = IntakeSettings(IgnoreRules(["*.part"]), 60.0, 5.0)
    assert intake.relative(str(tmp_path / "a.part")) is not None  # not before the next pass
    intake.run_once()
    assert intake.relative(str(tmp_path / "a.part")) is None and tracker.quiet_period_s == 5.0
