"""Running jobs: the worker threads, and one job to its end: output and archive, wait for more
bytes, or quarantine.

Every job ends in exactly one summary line, ``job_finished``, whose ``outcome`` is one of
``done``, ``waiting`` (cannot be decoded yet; retried until ``decode_grace_s``), ``quarantined``,
``changed`` (the file changed while in hand; it will be processed again), ``gone``, ``refused``
(reached through a symlinked directory; left alone) or ``error`` (unexpected; retried by the
next rescan until ``max_attempts``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from engine.errors import ImageError, ImageIncomplete, JobError
from engine.profile import Profile
from engine.session import Session
from watcher.completion import Signature
from watcher.config import Config
from watcher.jobs import Job, JobQueue
from watcher.output import earlier_source, move_durably, output_path, quarantine, write_outputs
from watcher.pipeline import read_source, render
from watcher.state import AttemptLog
from watcher.threads import StoppableThread

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class JobContext:
    """What a job runs with, swapped as a whole on reload: never half one model, half another."""

    session: Session
    config: Config


@dataclass
class Stats:
    """Counters for ``STATUS=`` and ``status.json``."""

    outcomes: Counter = field(default_factory=Counter)
    last_file: str = ""
    last_outcome: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, relative: Path, outcome: str) -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            self.last_file, self.last_outcome = str(relative), outcome


class JobRunner:
    """Carries out jobs; safe to share between worker threads."""

    def __init__(self, engine: Callable[[], JobContext], attempts: AttemptLog, stats: Stats,
                 clock: Callable[[], float] = time.monotonic,
                 recheck: Callable[[Path, float], None] | None = None) -> None:
        self._engine = engine
        self._recheck = recheck  # asks for the file again at a given clock time
        self._attempts = attempts
        self._stats = stats
        self._clock = clock
        self._first_failure: dict[Path, float] = {}
        self._lock = threading.Lock()

    def run(self, job: Job) -> str:
        engine = self._engine()
        started = time.perf_counter()
        log.debug("job_started", file=str(job.relative))
        profile = engine.config.profile_for(job.relative)
        fields: dict = {"model": engine.session.info.label, "profile": profile.name}
        try:
            outcome = self._run(job, engine, profile, fields)
        except Exception as e:
            outcome = "error"
            fields.update(error=f"{e.__class__.__name__}: {e}")
            log.exception("job_error", file=str(job.relative))
        fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
        level = "info" if outcome in ("done", "waiting", "changed", "gone") else "warning"
        getattr(log, level)("job_finished", file=str(job.relative), outcome=outcome, **fields)
        self._stats.record(job.relative, outcome)
        return outcome

    def _run(self, job: Job, engine: JobContext, profile: Profile, fields: dict) -> str:
        cfg = engine.config
        if not inside(cfg.paths.incoming, job):
            fields["error"] = "a directory on the path is a symbolic link; refusing to read or move anything"
            return "refused"
        try:
            source = read_source(job.path)
        except FileNotFoundError:
            return "gone"
        except ImageError as e:
            return self._quarantine(job, cfg, e, fields)
        key = attempt_key(job.relative, source.signature)
        previous = self._attempts.begin(key)
        if previous >= cfg.watcher.max_attempts:
            reason = f"the daemon stopped {previous} times while processing this file"
            return self._quarantine(job, cfg, JobError(reason), fields, key)
        try:
            rendered = render(source.data, engine.session, profile,
                              cfg.engine.max_input_pixels, cfg.output.png_compress_level)
        except ImageIncomplete as e:
            self._attempts.end(key)
            return self._incomplete(job, cfg, e, fields)
        except ImageError as e:
            return self._quarantine(job, cfg, e, fields, key)
        fields.update(width=rendered.width, height=rendered.height, input_bytes=rendered.input_bytes,
                      output_bytes=rendered.output_bytes, stages_ms=rendered.timings_ms)
        note_replacement(cfg, job, fields)
        targets = write_outputs(cfg.paths.output, job.relative, rendered.files)
        fields["output"] = str(targets[-1].relative_to(cfg.paths.output))
        outcome = self._archive(job, cfg, source.signature, fields)
        self._attempts.end(key)
        self._forget_failure(job.path)
        return outcome

    def _archive(self, job: Job, cfg: Config, decoded: Signature, fields: dict) -> str:
        try:
            now = Signature.of(job.path.lstat())
        except FileNotFoundError:
            return "gone"
        if now != decoded:
            return "changed"  # a new version is arriving under this name; leave it in place
        archived = move_durably(job.path, cfg.paths.archive, job.relative)
        fields["archived_as"] = str(archived.relative_to(cfg.paths.archive))
        return "done"

    def _incomplete(self, job: Job, cfg: Config, error: ImageError, fields: dict) -> str:
        now = self._clock()
        with self._lock:
            first = self._first_failure.setdefault(job.path, now)
        waited, grace = now - first, cfg.watcher.decode_grace_s
        fields.update(error=str(error), waited_s=round(waited, 1))
        if waited < grace:
            if self._recheck is not None:  # a resumed upload comes back by its own events before that
                self._recheck(job.path, first + grace)
            return "waiting"
        self._forget_failure(job.path)
        return self._quarantine(job, cfg, error, fields,
                                note=f"still undecodable {waited:.1f} s after its first failed decode "
                                     f"(decode_grace_s = {grace:g} s)")

    def _quarantine(self, job: Job, cfg: Config, error: BaseException, fields: dict,
                    key: str | None = None, note: str = "") -> str:
        reason = {"error": error.__class__.__name__, "reason": str(error),
                  **({"note": note} if note else {}),
                  "model": fields.get("model"), "profile": fields.get("profile")}
        target = quarantine(job.path, cfg.paths.failed, job.relative, reason)
        fields.update(error=str(error), quarantined_as=str(target.relative_to(cfg.paths.failed)))
        if key is not None:
            self._attempts.end(key)
        return "quarantined"

    def _forget_failure(self, path: Path) -> None:
        with self._lock:
            self._first_failure.pop(path, None)


def note_replacement(cfg: Config, job: Job, fields: dict) -> None:
    """When the cut-out already exists, say which archived upload made it (``replaced``), and warn
    when that was another file of the same stem (``dup.jpg`` then ``dup.png``)."""
    if not output_path(cfg.paths.output, job.relative).exists():
        return
    earlier = earlier_source(cfg.paths.archive, job.relative)
    fields["replaced"] = str(earlier) if earlier is not None else "an output of unknown source"
    if earlier is not None and earlier.name != job.relative.name:
        log.warning("same_stem_replaced", file=str(job.relative), earlier_source=str(earlier),
                    output=str(output_path(Path(), job.relative)))


def inside(incoming: Path, job: Job) -> bool:
    """True if no directory between incoming and the file is a symlink leading elsewhere.

    O_NOFOLLOW guards only the last component; an uploaded symlink to a directory would
    otherwise let the daemon read, and then move, files outside the upload area.
    """
    return job.path.parent.resolve() == incoming.resolve() / job.relative.parent


def attempt_key(relative: Path, sig: Signature) -> str:
    """A file's identity across restarts: a new upload under the same name is a new key."""
    return f"{relative}\0{sig.size}\0{sig.mtime_ns}\0{sig.inode}"


class Worker(StoppableThread):
    """Takes jobs until stopped; a stop lets the job in hand finish first."""

    def __init__(self, index: int, jobs: JobQueue, runner: JobRunner) -> None:
        super().__init__(f"worker-{index}")
        self.jobs, self.runner = jobs, runner

    def run_once(self) -> None:
        job = self.jobs.get(timeout=0.5)
        if job is not None:
            try:
                self.runner.run(job)
            finally:
                self.jobs.done(job)
