"""Where mattes are made: with this process's own model (``LocalMatting``), in render processes
with copies of it (``watcher.processing.processes.ProcessMatting``, ``engine.processes``) or by
queue workers (``watcher.remote.RemoteMatting``). The daemon picks one at start-up; everything
downstream (the job runner, the HTTP side, batches, status and health) uses it through
``Matting`` and never asks which it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from unet_matting.watcher.processing.pipeline import Rendered, render

if TYPE_CHECKING:
    from unet_matting.engine.profile import Profile
    from unet_matting.engine.session import Session
    from unet_matting.watcher.remote.client import QueueStats


class Matting(Protocol):
    """One way of turning an upload's bytes into its outputs."""

    #: whether a death of this process mid-job says something about the upload (local: the model
    #: ran here, so ``watcher.max_attempts`` counts; queue: RabbitMQ counts the workers' deaths)
    counts_crashes: bool

    @property
    def label(self) -> str:
        """The model as the logs name it (file@hash), or who makes the mattes."""
        ...

    def render(self, data: bytes, profile: Profile, job: str, file: str, max_pixels: int, png_level: int) -> Rendered:
        """The outputs of one upload; ``ImageError`` for bad input, ``Deferred`` for "not now"."""
        ...

    def memory(self) -> dict[str, int] | None:
        """GPU memory figures of this process (None: no CUDA model here)."""
        ...

    def status(self) -> dict:
        """What ``status.json`` reports of it (batch sizes, or the broker's figures)."""
        ...

    def queue_stats(self) -> QueueStats | None:
        """The broker's figures (queue mode), for ``/metrics`` and the status line."""
        ...

    def health(self) -> dict:
        """What ``/health`` shows of it (no file-system paths: it is unauthenticated)."""
        ...

    def problems(self) -> list[str]:
        """Why it cannot make mattes now (``/health`` is 503 while there are any)."""
        ...

    def threads(self) -> list:
        """Its own threads, which must stay alive."""
        ...

    def abandon_waits(self, after_s: float) -> None:
        """Stopping: callers still waiting after ``after_s`` give up (their uploads stay)."""
        ...

    def stop(self) -> None:
        """Release what it holds; called once, after the last job."""
        ...


class LocalMatting:
    """The daemon's own model; one value per loaded session (a model switch makes a new one)."""

    counts_crashes = True

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def label(self) -> str:
        return self.session.info.label

    def render(self, data: bytes, profile: Profile, job: str, file: str, max_pixels: int, png_level: int) -> Rendered:
        return render(data, self.session, profile, max_pixels, png_level, file)

    def memory(self) -> dict[str, int] | None:
        return self.session.memory()

    def status(self) -> dict:
        status: dict = {
            "precision": self.session.precision,
            "batches": {str(size): n for size, n in sorted(self.session.batch_counts.items())},
        }
        if memory := self.memory():
            status["gpu_memory_mb"] = in_mb(memory)
        return status

    def health(self) -> dict:
        return {"device": str(self.session.device)}

    def queue_stats(self) -> None:
        return None

    def problems(self) -> list[str]:
        return []

    def threads(self) -> list:
        return []

    def abandon_waits(self, after_s: float) -> None:
        return None  # a local job is never waiting on anyone

    def stop(self) -> None:
        return None  # the session is freed with the last reference to it


def in_mb(figures: dict[str, int] | None) -> dict[str, float] | None:
    return {k: round(v / 2**20, 1) for k, v in figures.items()} if figures else None
