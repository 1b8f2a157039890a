"""Rendering in processes (``engine.processes``): one daemon's CPU stages on every core.

In one process the stages around the network (decoding, post-processing, PNG and JPEG encoding)
share Python's interpreter lock, so on a GPU box one daemon's threads mostly queue for it while
the GPU idles (docs/models.md, "On a GPU": 2.6 img/s with 16 threads, 7.9 with 16 processes at
12 MP). Here each upload's whole render (decode to encoded files) runs in one of N worker
processes, each with its own copy of the model; the upload's bytes go in and the finished files
come back through a pipe, a few MB each way, which costs milliseconds next to the render.

- The daemon keeps its own session too: it names the model, answers ``status``, ``/metrics`` and
  the precision check, and a model switch still loads there first; the processes then load the
  same file (one more copy of the weights in memory).
- ``engine.threads`` is each process's; 0 shares the cores out (cores // N, at least 1).
- A process that dies mid-render (killed, out of memory, a crash in native code) fails the jobs
  it and its siblings had in hand with ``RenderStopped``, one sentence; their uploads stay in
  ``incoming`` and are retried, counted against ``watcher.max_attempts`` like a crash of the
  daemon (a file that kills its process every time ends in quarantine), and the next render
  starts fresh processes. An HTTP request gets 503 (retry).
- The processes ignore SIGINT and SIGTERM: the daemon stops them itself, after its last job, so
  a ``systemctl stop`` (``KillMode=mixed``) or Ctrl-C does not break the renders in hand. A
  daemon killed outright (kill -9, a crash) takes them with it: each exits within a second of
  finding itself orphaned.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import weakref
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from multiprocessing import get_context
from typing import TYPE_CHECKING

from unet_matting.engine.errors import ModelError
from unet_matting.engine.settings import EngineSettings
from unet_matting.watcher.errors import RenderStopped
from unet_matting.watcher.processing.matting import LocalMatting
from unet_matting.watcher.processing.pipeline import Rendered, render

if TYPE_CHECKING:
    from unet_matting.engine.profile import Profile
    from unet_matting.engine.session import Session
    from unet_matting.watcher.config import EngineConfig

PARENT_POLL_S = 1.0  # how often a render process checks that the daemon is still there
START_TIMEOUT_S = 600.0  # how long the first processes may take to load and warm up their model
STOPPED = "a render process stopped before it finished (killed, out of memory, or crashed)"

_session: Session | None = None  # the model of this render process (set by _start)
_everyone = None  # a barrier of all the pool's processes (set by _start): ``start`` meets each once


def process_settings(settings: EngineSettings, processes: int) -> EngineSettings:
    """One render process's engine settings: ``threads`` 0 shares the cores out between them."""
    if settings.threads > 0:
        return settings
    return replace(settings, threads=max(1, (os.cpu_count() or 1) // processes))


def _start(settings: EngineSettings, everyone) -> None:
    """A render process's start: the model loaded and warmed up before its first job."""
    global _session, _everyone
    _everyone = everyone
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from unet_matting.engine.memory import keep_large_buffers
    from unet_matting.engine.session import Session

    keep_large_buffers()
    _session = Session.load(settings)
    threading.Thread(target=_end_with, args=(os.getppid(),), name="parent-watch", daemon=True).start()


def _end_with(parent: int) -> None:
    """End this render process once the daemon that started it is gone (kill -9, a crash): its
    pool can send no more work, and an orphan would hold a model's memory until a reboot."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _render(data: bytes, profile: Profile, max_pixels: int, png_level: int, file: str) -> Rendered:
    return render(data, _session, profile, max_pixels, png_level, file)  # _start ran, or the pool broke


def _ready() -> int:
    """This process's id, once every process of the pool has loaded its model (one call each:
    a process waiting here takes no other call)."""
    _everyone.wait(START_TIMEOUT_S)
    return os.getpid()


def matting_for(session: Session, engine: EngineConfig, start: bool = False) -> LocalMatting:
    """The daemon's matting with ``session``: in its own threads, or in ``engine.processes``
    processes (``start``: started and warmed up before this returns; else at the first render)."""
    if not engine.processes:
        return LocalMatting(session)
    matting = ProcessMatting(session, engine.settings, engine.processes)
    if start:
        matting.start()
    return matting


class ProcessMatting(LocalMatting):
    """``LocalMatting`` whose renders run in ``processes`` worker processes with the same model."""

    def __init__(self, session: Session, settings: EngineSettings, processes: int) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        super().__init__(session)
        from unet_matting.engine.memory import give_back_free_memory

        give_back_free_memory()  # the daemon's copy runs no pass from here: its warm-up's buffers go back
        self.processes = processes
        # the format the daemon's own load settled on (its check's fallback included): every process alike
        chosen = replace(settings, model=session.path, precision=session.precision)
        self.settings = process_settings(chosen, processes)
        self._lock = threading.Lock()
        self.pids: tuple[int, ...] = ()  # the processes of the current pool, once started
        # the current pool, if any (at most one): a list the finalizer can hold without holding
        # this matting, which a model switch drops without a stop(): its processes go with its last job
        self._pool: list[ProcessPoolExecutor] = []
        weakref.finalize(self, _close, self._pool)

    def start(self) -> None:
        """Start the processes and wait until each has loaded its model (``ModelError`` if one
        cannot): a daemon that reports ready renders at once."""
        pool = self._current()
        futures = [pool.submit(_ready) for _ in range(self.processes)]
        try:
            pids = {f.result() for f in futures}
        except (BrokenProcessPool, threading.BrokenBarrierError):
            self._discard(pool)
            raise ModelError(
                f"the render processes could not load {self.settings.model}; run unet-matting check"
            ) from None
        self.pids = tuple(sorted(pids))

    def render(self, data: bytes, profile: Profile, job: str, file: str, max_pixels: int, png_level: int) -> Rendered:
        pool = self._current()
        try:
            future: Future = pool.submit(_render, data, profile, max_pixels, png_level, file)
        except BrokenProcessPool:  # a process died before this job reached it (idle, out of memory)
            self._discard(pool)
            pool = self._current()  # the job goes to fresh processes, and costs the upload nothing
            future = pool.submit(_render, data, profile, max_pixels, png_level, file)
        try:
            return future.result()
        except BrokenProcessPool:
            self._discard(pool)
            raise RenderStopped(STOPPED) from None

    def status(self) -> dict:
        status = super().status()
        del status["batches"]  # the daemon's own session runs no jobs; the processes' batches are theirs
        status["processes"] = self.processes
        return status

    def health(self) -> dict:
        return {**super().health(), "processes": self.processes}

    def stop(self) -> None:
        with self._lock:
            pools, self._pool[:] = list(self._pool), []
        for pool in pools:
            pool.shutdown(wait=True)

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if not self._pool:
                spawn = get_context("spawn")  # torch's threads do not survive a fork
                pool = ProcessPoolExecutor(
                    self.processes,
                    spawn,
                    initializer=_start,
                    initargs=(self.settings, spawn.Barrier(self.processes)),
                )
                self._pool.append(pool)
                self.pids = ()
            return self._pool[0]

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        """A broken pool goes (once, whichever job saw it first); the next render starts a new one."""
        with self._lock:
            if self._pool and self._pool[0] is pool:
                self._pool.clear()
        pool.shutdown(wait=False, cancel_futures=True)


def _close(pools: list[ProcessPoolExecutor]) -> None:
    """The processes of a matting no job holds any more: they finish and exit."""
    for pool in pools:
        pool.shutdown(wait=False)
