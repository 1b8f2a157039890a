"""Running jobs: the worker threads, and one job to its end: output and archive, wait for more
bytes, or quarantine.

Every job ends in exactly one summary line, ``job_finished``, whose ``outcome`` is one of
``done``, ``waiting`` (cannot be decoded, or read, yet; retried until ``decode_grace_s``),
``quarantined``, ``changed`` (the file changed while in hand; it will be processed again),
``gone``, ``refused`` (reached through a symlinked directory; left alone) or ``error`` (retried
by the next rescan until ``max_attempts``: an output or archive that cannot be written is one
line with the reason, an unexpected failure also logs its traceback).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from unet_matting.engine.errors import ImageError, ImageIncomplete, JobError
from unet_matting.engine.profile import Profile
from unet_matting.watcher.config import Config
from unet_matting.watcher.errors import Deferred, os_reason
from unet_matting.watcher.events import Events
from unet_matting.watcher.intake.completion import Signature
from unet_matting.watcher.intake.jobs import Job, JobQueue
from unet_matting.watcher.processing.matting import Matting
from unet_matting.watcher.processing.output import (
    MANIFEST_SUFFIX,
    earlier_source,
    move_durably,
    output_path,
    quarantine,
    write_outputs,
)
from unet_matting.watcher.processing.pipeline import Rendered, Source, read_source
from unet_matting.watcher.processing.stats import Stats
from unet_matting.watcher.processing.validation import summary
from unet_matting.watcher.prometheus import Metrics
from unet_matting.watcher.review.queue import ReviewQueue, item_id, record_of
from unet_matting.watcher.state import AttemptLog
from unet_matting.watcher.threads import StoppableThread

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class JobContext:
    """What a job runs with, swapped as a whole on reload: never half one model, half another."""

    matting: Matting
    config: Config

    @property
    def model_label(self) -> str:
        return self.matting.label

    def render(self, data: bytes, profile: Profile, job: str, file: str) -> Rendered:
        """The upload's outputs (here or on a queue worker); ``ImageError`` for bad input."""
        cfg = self.config
        return self.matting.render(data, profile, job, file, cfg.engine.max_input_pixels, cfg.output.png_compress_level)


QUIET_OUTCOMES = ("done", "waiting", "changed", "gone")  # the rest are logged as warnings


@dataclass(frozen=True)
class Outcome:
    """How a job ended (``name``) and what its ``job_finished`` line says about it (``fields``)."""

    name: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def adding(self, **more: Any) -> Outcome:
        return Outcome(self.name, {**more, **self.fields})

    @property
    def level(self) -> str:
        return "info" if self.name in QUIET_OUTCOMES else "warning"


class JobRunner:
    """Carries out jobs; safe to share between worker threads.

    Each step returns an ``Outcome``; ``run`` alone logs it (one ``job_finished`` line) and counts it.
    """

    def __init__(
        self,
        context: Callable[[], JobContext],
        attempts: AttemptLog,
        stats: Stats,
        clock: Callable[[], float] = time.monotonic,
        recheck: Callable[[Path, float], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._context = context
        self._metrics = metrics
        self._recheck = recheck  # asks for the file again at a given clock time
        self._attempts = attempts
        self._stats = stats
        self._clock = clock
        self._first_failure: dict[Path, float] = {}
        self._lock = threading.Lock()

    def run(self, job: Job) -> str:
        ctx = self._context()
        started = time.perf_counter()
        log.debug("job_started", file=str(job.relative))
        profile = ctx.config.profile_for(job.relative)
        try:
            outcome = self._run(job, ctx, profile)
        except OSError as e:  # a full disk, a read-only or unwritable output: the reason is enough
            outcome = Outcome("error", {"error": os_reason(e)})
        except JobError as e:  # out of GPU memory, a render process that died: the sentence says it
            outcome = Outcome("error", {"error": str(e)})
        except Exception as e:
            outcome = Outcome("error", {"error": f"{e.__class__.__name__}: {e}"})
            log.exception("job_error", file=str(job.relative))
        seconds = time.perf_counter() - started
        fields = {"model": ctx.model_label, **outcome.fields}
        getattr(log, outcome.level)(
            "job_finished",
            file=str(job.relative),
            outcome=outcome.name,
            profile=profile.name,
            **fields,
            duration_ms=round(seconds * 1000, 1),
        )
        structlog.contextvars.unbind_contextvars("job_id")
        if self._metrics is not None:
            self._metrics.finished(outcome.name, "upload", seconds, outcome.fields.get("stages_ms"), time.time())
            if "confidence" in outcome.fields:
                self._metrics.judged(outcome.fields["confidence"])
            if "validation" in outcome.fields:
                self._metrics.validated(profile.name, outcome.fields["validation"]["rules"])
        self._stats.record(job.relative, outcome.name)
        return outcome.name

    def _run(self, job: Job, ctx: JobContext, profile: Profile) -> Outcome:
        cfg = ctx.config
        if not inside(cfg.paths.incoming, job):
            return Outcome(
                "refused", {"error": "a directory on the path is a symbolic link; refusing to read or move anything"}
            )
        try:
            source = read_source(job.path)
        except FileNotFoundError:
            return Outcome("gone")
        except PermissionError as e:  # the uploader's mode (000) or owner: it may be fixed; else quarantined
            return self._incomplete(
                job, ctx, profile, ImageIncomplete(f"the daemon may not read it ({os_reason(e)})"), "still unreadable"
            )
        except ImageError as e:
            return self._quarantine(job, ctx, profile, e)
        key = attempt_key(job.relative, source.signature)
        structlog.contextvars.bind_contextvars(job_id=job_id(key))  # the same id on the workers' lines
        # crash counting guards against files that kill this process; in queue mode the workers run
        # them (RabbitMQ counts their deaths), and a watcher restart says nothing about the file
        previous = self._attempts.begin(key) if ctx.matting.counts_crashes else 0
        if previous >= cfg.watcher.max_attempts:
            reason = f"processing stopped {previous} times on this file (the daemon or its render process died)"
            return self._quarantine(job, ctx, profile, JobError(reason), key)
        try:
            rendered = ctx.render(source.data, profile, job_id(key), str(job.relative))
        except ImageIncomplete as e:
            self._attempts.end(key)
            return self._incomplete(job, ctx, profile, e)
        except ImageError as e:
            return self._quarantine(job, ctx, profile, e, key)
        except Deferred as e:  # the queue cannot take or answer it now; the upload stays where it is
            self._attempts.end(key)
            if e.retry_s is not None and self._recheck is not None:
                self._recheck(job.path, self._clock() + e.retry_s)
            return Outcome("deferred", {"error": str(e)})
        try:
            if held(profile, rendered):
                return self._hold(job, cfg, source, rendered, profile, key)
            return self._publish(job, cfg, source.signature, rendered, key)
        finally:  # a full or read-only disk is not the upload's fault: no crash to count against it
            self._attempts.end(key)

    def _publish(self, job: Job, cfg: Config, decoded: Signature, rendered: Rendered, key: str) -> Outcome:
        """Outputs into place and their event into the outbox, then the original to the archive;
        the outcome with what was made. A held cut-out of the same stem is stale then and goes
        (approving it would undo this)."""
        replaced = replacement(cfg, job)
        targets = write_outputs(cfg.paths.output, job.relative, rendered.files)
        if ReviewQueue.of(cfg.paths).discard(job.relative):
            replaced["replaced_held"] = item_id(job.relative)
        if (events := Events.of(cfg)) is not None:
            events.published(job.relative, rendered.files[MANIFEST_SUFFIX], job_id(key))
        outcome = self._archive(job, cfg, decoded)
        self._forget_failure(job.path)
        return outcome.adding(
            **made(rendered), **replaced, held=False, output=str(targets[0].relative_to(cfg.paths.output))
        )

    def _hold(self, job: Job, cfg: Config, source: Source, rendered: Rendered, profile: Profile, key: str) -> Outcome:
        """The set into the review folder (record last) and its event, then the original to the archive."""
        queue = ReviewQueue.of(cfg.paths)
        record = record_of(rendered, job.relative.name, source.data, profile.name)
        item = queue.hold(job.relative, rendered.files, record)
        if (events := Events.of(cfg)) is not None:
            events.held(job.relative, item.id, rendered.confidence, profile.name, job_id(key))
        outcome = self._archive(job, cfg, source.signature)
        if "archived_as" in outcome.fields:
            queue.note(item.id, archived_as=outcome.fields["archived_as"])
        self._forget_failure(job.path)
        return outcome.adding(**made(rendered), held=True, review=item.id)

    def _archive(self, job: Job, cfg: Config, decoded: Signature) -> Outcome:
        try:
            now = Signature.of(job.path.lstat())
        except FileNotFoundError:
            return Outcome("gone")
        if now != decoded:
            return Outcome("changed")  # a new version is arriving under this name; leave it in place
        archived = move_durably(job.path, cfg.paths.archive, job.relative)
        return Outcome("done", {"archived_as": str(archived.relative_to(cfg.paths.archive))})

    def _incomplete(
        self, job: Job, ctx: JobContext, profile: Profile, error: ImageError, still: str = "still undecodable"
    ) -> Outcome:
        now = self._clock()
        with self._lock:
            first = self._first_failure.setdefault(job.path, now)
        waited, grace = now - first, ctx.config.watcher.decode_grace_s
        if waited < grace:
            if self._recheck is not None:  # a resumed upload comes back by its own events before that
                self._recheck(job.path, first + grace)
            return Outcome("waiting", {"error": str(error), "waited_s": round(waited, 1)})
        self._forget_failure(job.path)
        note = f"{still} {waited:.1f} s after its first failed attempt (decode_grace_s = {grace:g} s)"
        return self._quarantine(job, ctx, profile, error, note=note).adding(waited_s=round(waited, 1))

    def _quarantine(
        self, job: Job, ctx: JobContext, profile: Profile, error: BaseException, key: str | None = None, note: str = ""
    ) -> Outcome:
        reason = {
            "error": error.__class__.__name__,
            "reason": str(error),
            **({"note": note} if note else {}),
            "model": ctx.model_label,
            "profile": profile.name,
        }
        target = quarantine(job.path, ctx.config.paths.failed, job.relative, reason)
        quarantined_as = str(target.relative_to(ctx.config.paths.failed))
        if (events := Events.of(ctx.config)) is not None:
            about = job_id(key) if key is not None else f"{job.relative}\0{quarantined_as}"
            events.failed(job.relative, str(error), error.__class__.__name__, quarantined_as, about)
        if key is not None:
            self._attempts.end(key)
        return Outcome("quarantined", {"error": str(error), "quarantined_as": quarantined_as})

    def _forget_failure(self, path: Path) -> None:
        with self._lock:
            self._first_failure.pop(path, None)


def held(profile: Profile, rendered: Rendered) -> bool:
    """Whether a cut-out goes to review: the profile asks for it and the score is below its line."""
    judged = rendered.confidence
    return profile.review_below > 0 and judged is not None and judged.score < profile.review_below


def made(rendered: Rendered) -> dict[str, Any]:
    """What the ``job_finished`` line says of a cut-out, held or published."""
    judged = rendered.confidence
    return {
        "width": rendered.width,
        "height": rendered.height,
        "input_bytes": rendered.input_bytes,
        "output_bytes": rendered.output_bytes,
        "stages_ms": rendered.timings_ms,
        **({} if judged is None else {"confidence": judged.score, "reasons": list(judged.reasons)}),
        **({} if rendered.validation is None else {"validation": validation_fields(rendered.validation)}),
        **({"model": rendered.model, "worker": rendered.worker} if rendered.worker else {}),
    }


def validation_fields(broken: list[tuple[str, str]]) -> dict[str, Any]:
    """The ``job_finished`` line's ``validation``: the manifest's, and the rules' names."""
    return {**summary(broken), "rules": [rule for rule, _ in broken]}


def replacement(cfg: Config, job: Job) -> dict[str, str]:
    """When the cut-out already exists: ``replaced``, the archived upload that made it; and a
    warning when that was another file of the same stem (``dup.jpg`` then ``dup.png``)."""
    if not any(output_path(cfg.paths.output, job.relative, s).exists() for s in (MANIFEST_SUFFIX, ".png")):
        return {}
    earlier = earlier_source(cfg.paths.archive, job.relative)
    if earlier is not None and earlier.name != job.relative.name:
        log.warning(
            "same_stem_replaced",
            file=str(job.relative),
            earlier_source=str(earlier),
            output=str(output_path(Path(), job.relative)),
        )
    return {"replaced": str(earlier) if earlier is not None else "an output of unknown source"}


def inside(incoming: Path, job: Job) -> bool:
    """True if no directory between incoming and the file is a symlink leading elsewhere.

    O_NOFOLLOW guards only the last component; an uploaded symlink to a directory would
    otherwise let the daemon read, and then move, files outside the upload area.
    """
    return job.path.parent.resolve() == incoming.resolve() / job.relative.parent


def attempt_key(relative: Path, sig: Signature) -> str:
    """A file's identity across restarts: a new upload under the same name is a new key."""
    return f"{relative}\0{sig.size}\0{sig.mtime_ns}\0{sig.inode}"


def job_id(key: str) -> str:
    """A job's id in every log line (and the queue's task id): from the upload's identity, so
    the same upload sent again after a restart or a time-out keeps its id on every host."""
    return hashlib.sha256(key.encode()).hexdigest()[:24]


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
