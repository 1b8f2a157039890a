"""The daemon's own errors (stdlib only), under the project's ``UnetMattingError``."""

from __future__ import annotations

from unet_matting.engine.errors import ImageError, JobError, UnetMattingError


class ConfigError(UnetMattingError):
    """The configuration is invalid; the message names the key path."""


class AlreadyRunning(UnetMattingError):
    """Another daemon holds the instance lock of this ``paths.state``."""


class FetchError(UnetMattingError):
    """A model could not be fetched or did not verify; the message says why."""


class Deferred(JobError):
    """A queue job could not be done now (broker unreachable, no answer in time, the watcher
    stopping): the upload stays in place and is sent again after ``retry_s`` (None: at the
    next start)."""

    def __init__(self, message: str, retry_s: float | None) -> None:
        super().__init__(message)
        self.retry_s = retry_s


class RenderStopped(JobError):
    """A render process (``engine.processes``) ended before it finished its job; the job is
    retried, and counts against ``watcher.max_attempts`` like a crash of the daemon."""


class DeadJob(ImageError):
    """The queue workers died on this upload ``queue.max_deliveries`` times: it is quarantined."""


def os_reason(error: OSError) -> str:
    """An OS error as one sentence an operator can act on: what failed, on which file, errno."""
    where = f" ({error.filename})" if error.filename else ""
    return f"{error.strerror or str(error) or error.__class__.__name__}{where} (errno {error.errno})"
