"""The daemon: wiring, signals, systemd notification, ordered and idempotent shutdown.

Threads: the watchdog observer (events -> hints), ``intake`` (hints -> tracker -> jobs) and
``worker-N`` (jobs -> outputs). The main thread only handles signals, heartbeats and status.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from unet_matting.engine.errors import ModelError
from unet_matting.engine.session import Session
from unet_matting.watcher import __version__, logs
from unet_matting.watcher.api.batches import BatchTasks
from unet_matting.watcher.components import MattingPart, Parts
from unet_matting.watcher.config import Config, load_config
from unet_matting.watcher.errors import ConfigError
from unet_matting.watcher.events import Events
from unet_matting.watcher.events.outbox import Outbox
from unet_matting.watcher.events.sender import EventSenders
from unet_matting.watcher.intake.completion import CompletionTracker, IgnoreRules
from unet_matting.watcher.intake.feeder import Intake, IntakeSettings
from unet_matting.watcher.intake.jobs import JobQueue
from unet_matting.watcher.intake.observer import HintHandler, OverflowHook
from unet_matting.watcher.intake.watching import IncomingWatch
from unet_matting.watcher.models.active import ModelSwitcher, RetiredModels, load_session
from unet_matting.watcher.models.keeper import ModelKeeper, log_precision_check, startup_model, switcher_for
from unet_matting.watcher.notify import Notifier, watchdog_interval_s
from unet_matting.watcher.processing.matting import Matting, in_mb
from unet_matting.watcher.processing.processes import matting_for
from unet_matting.watcher.processing.runner import JobContext, JobRunner, Worker
from unet_matting.watcher.processing.stats import Stats
from unet_matting.watcher.prometheus import Metrics
from unet_matting.watcher.reload import plan_reload
from unet_matting.watcher.report import Report
from unet_matting.watcher.review.queue import ReviewQueue
from unet_matting.watcher.state import STATUS_INTERVAL_S, AttemptLog, InstanceLock, StatusFile, prepare_directories

if TYPE_CHECKING:  # the HTTP side (FastAPI, uvicorn) and the queue (Celery) load only when configured
    from unet_matting.watcher.api.app import Access
    from unet_matting.watcher.api.server import HttpServer
    from unet_matting.watcher.config import HttpConfig
    from unet_matting.watcher.remote.client import QueueStats

QUEUE_STOP_GRACE_S = 10.0  # on stop, how long answers of jobs in flight are still awaited

log = structlog.get_logger(__name__)


class Daemon:
    """``unet-matting watch``: runs until SIGTERM or SIGINT; SIGHUP reloads the config."""

    def __init__(self, config_path: Path, config: Config) -> None:
        self.config_path = config_path
        self.config = config
        self.notifier = Notifier()
        self.stats = Stats()
        self.jobs = JobQueue()
        self._wake = threading.Event()
        self._signals: list[int] = []
        self._stopped = False
        self._current: JobContext | None = None  # None until the first model loaded
        self.ready_at: float | None = None
        self.http: HttpServer | None = None
        self.metrics = Metrics(
            queue_depth=lambda: self.jobs.depth(),
            in_flight=self._in_flight,
            gpu_memory=self._gpu_memory,
            broker=self._queue_stats,
            held=lambda: ReviewQueue.of(self.config.paths).count(),
            events=self._event_counts,
        )
        self.senders = EventSenders(self.metrics.event_counted)
        self.retired = RetiredModels()  # swapped-out models whose GPU memory is not yet back
        self.models: ModelKeeper | None = None  # local matting only: the model that runs
        self.report = Report(self)
        self.parts = Parts()  # started in order, stopped in reverse
        self._access: Access | None = None  # the HTTP side's token, body limit and batch roots

    def _gpu_memory(self) -> dict[str, int] | None:
        return self._current.matting.memory() if self._current is not None else None

    def _queue_stats(self) -> QueueStats | None:
        return self._current.matting.queue_stats() if self._current is not None else None

    def context(self) -> JobContext | None:
        return self._current

    def _event_counts(self) -> dict[str, tuple[int, int]]:
        """(pending, dead) events per configured endpoint, read from the outbox."""
        outbox = Outbox(self.config.paths.state)
        return {e.name: outbox.counts(e.name) for e in self.config.events.endpoints}

    def event_status(self) -> dict[str, dict]:
        """``status.json``'s ``events``: per endpoint, what waits, what died, the last failure."""
        errors = self.senders.last_errors()
        return {
            name: {"pending": pending, "dead": dead, "last_error": errors.get(name)}
            for name, (pending, dead) in self._event_counts().items()
        }

    def _in_flight(self) -> int:
        return self.jobs.in_hand() + (self.http.gate.busy if self.http is not None else 0)

    def _start_http(self, cfg: Config) -> None:
        """The HTTP side, before the model loads, so /health can say it is loading."""
        from unet_matting.watcher.api.server import access_for, serve

        self._access = access_for(cfg.http)
        self.batch = BatchTasks(cfg.paths.state, self.context, IgnoreRules(cfg.watcher.ignore_patterns), self.metrics)
        self.http = serve(
            cfg.http,
            self.context,
            self.report.health,
            self.metrics,
            lambda: self._access,
            self.batch,
            lambda: ReviewQueue.of(self.config.paths, self.metrics.decided, Events.of(self.config)),
        )

    def start(self) -> None:
        """Lock, directories, the HTTP side, the model (or the queue), then intake and workers."""
        cfg = self.config
        cfg.paths.state.mkdir(parents=True, exist_ok=True)
        self.instance = InstanceLock(cfg.paths.state)
        self.instance.acquire()  # before touching any file, and before the model loads
        prepare_directories(cfg.paths)
        if recovered := ReviewQueue.of(cfg.paths, events=Events.of(cfg)).recover():
            log.info("review_decisions_finished", count=recovered)
        self.senders.replace(
            cfg.events, cfg.paths.state, EventSenders.secrets(cfg.events)
        )  # before jobs: a bad secret stops here
        self.parts.start(self.senders)
        switcher = switcher_for(cfg.engine) if cfg.queue.broker_url is None else None
        model = startup_model(switcher) if switcher is not None else None  # before any socket opens
        if cfg.http.listen is not None:
            self._start_http(cfg)
        self._current = JobContext(self._start_matting(cfg, switcher, model), cfg)
        self.parts.start(MattingPart(lambda: self._current.matting, QUEUE_STOP_GRACE_S))
        self._start_intake(cfg)
        if self.http is not None:  # started first (so /health can say the model loads), stopped first
            self.parts.adopt(self.http)
        self.status_file.write(self.report.status())  # there before daemon_ready: readers of the line find it
        log.info(
            "daemon_ready",
            version=__version__,
            incoming=str(cfg.paths.incoming),
            observer=cfg.watcher.observer,
            workers=len(self.workers),
            profile=cfg.profile,
        )
        self.ready_at = time.monotonic()
        self.notifier.ready(self.report.line())

    def _start_matting(self, cfg: Config, switcher: ModelSwitcher | None, model: Path | None) -> Matting:
        """The model here, or (queue mode) the client that sends jobs to the workers."""
        if switcher is None:  # workers matte; this process sends jobs and writes results
            from unet_matting.watcher.remote.client import RemoteMatting

            remote = RemoteMatting(cfg.queue)
            remote.start()
            log.info("queue_mode", jobs=cfg.queue.jobs, results=remote.results_name, in_flight=cfg.watcher.workers)
            return remote
        session = load_session(cfg.engine, model)
        self.models = ModelKeeper(switcher, session)
        self._model_loaded(session)
        return matting_for(session, cfg.engine, start=True)

    def _start_intake(self, cfg: Config) -> None:
        """Observer, intake thread, workers and batches, started in that order, then the first scan."""
        self.attempts = AttemptLog(cfg.paths.state)
        self.status_file = StatusFile(cfg.paths.state)
        self.runner = JobRunner(
            self.context,
            self.attempts,
            self.stats,
            recheck=lambda path, at: self.intake.recheck(path, at),
            metrics=self.metrics,
        )
        hints: queue.SimpleQueue = queue.SimpleQueue()
        self.tracker = CompletionTracker(cfg.watcher.quiet_period_s, time.monotonic)
        self._intake_settings = IntakeSettings.of(cfg.watcher)
        self.intake = Intake(cfg.paths.incoming, hints, self.tracker, self.jobs, lambda: self._intake_settings)
        self.overflow_hook = OverflowHook(lambda: self.intake.request_rescan("inotify_overflow", events_lost=True))
        logging.getLogger("watchdog.observers").addHandler(self.overflow_hook)
        self.watch = IncomingWatch(
            cfg.watcher.observer,
            cfg.paths.incoming,
            HintHandler(hints),
            cfg.watcher.polling_interval_s,
            self.intake.request_rescan,
        )
        self.workers = [Worker(i, self.jobs, self.runner) for i in range(cfg.watcher.workers)]
        for part in (self.watch, self.intake, *self.workers):  # the observer before the scan: nothing unseen
            self.parts.start(part)
        if self.http is not None:
            self.parts.start(self.batch)  # after the model loaded: unfinished tasks resume here
        self.intake.request_rescan("startup")

    def _model_loaded(self, session: Session) -> None:
        log.info(
            "model_loaded",
            model=session.info.label,
            arch=session.info.arch,
            device=str(session.device),
            input_size=session.input_size,
            max_batch=session.max_batch,
            precision=session.precision,
        )
        log_precision_check(session)
        self.metrics.model_loaded(session)

    def run(self) -> int:
        """Start, then serve signals until asked to stop; returns the process exit code."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        self.start()
        heartbeat = watchdog_interval_s()
        wait_s = min(heartbeat or STATUS_INTERVAL_S, STATUS_INTERVAL_S)
        exit_code = None
        while exit_code is None:
            self._wake.wait(wait_s)
            self._wake.clear()
            exit_code = self._handle_signals()
            if exit_code is None:
                self._tick(heartbeat is not None)
        self.shutdown()
        return exit_code

    def _handle_signals(self) -> int | None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum != signal.SIGHUP:
                return 130 if signum == signal.SIGINT else 0
            self.reload()
        return None

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals.append(signum)
        self._wake.set()

    def _switch_model(self) -> None:
        """A model the keeper has loaded (``models use``, or a reload's engine) takes over here."""
        switched = self.models.poll() if self.models is not None else None  # queue mode: the workers switch
        if switched is None:
            return
        if switched.engine is not None:  # a reload's engine section applies together with its model
            self.config = dataclasses.replace(self.config, engine=switched.engine)
        # render processes, if any, load the new model at its first job (off this loop's heartbeat)
        self._current = JobContext(matting_for(switched.session, self.config.engine), self.config)
        self.metrics.model_loaded(switched.session)
        self.retired.retire(switched.previous)

    def _tick(self, heartbeat: bool) -> None:
        self.watch.check()
        self._switch_model()
        if self.retired.release_when_unused():
            log.info("model_memory_released", gpu_memory_mb=in_mb(self._gpu_memory()))
        dead = self.dead_threads()
        if dead:
            log.error("threads_dead", threads=dead)
        elif heartbeat:
            self.notifier.watchdog()
        status = self.report.line()
        self.notifier.status(status)
        self.status_file.write(self.report.status())

    def dead_threads(self) -> list[str]:
        return self.parts.dead()

    def _http_access(self, http: HttpConfig) -> Access | None:
        if self.http is None:
            return None
        from unet_matting.watcher.api.server import access_for

        return access_for(http)

    def reload(self) -> None:
        """SIGHUP: RELOADING=1, re-read config and model, READY=1; a bad config changes nothing."""
        self.notifier.reloading()
        log.info("reload_started", config=str(self.config_path))
        try:
            self._apply(load_config(self.config_path))
        except (ConfigError, ModelError) as e:
            log.error("reload_failed", error=str(e), kept="previous configuration and model")
        self.notifier.ready(self.report.line())

    def _apply(self, new: Config) -> None:
        plan = plan_reload(self.config, new, local_model=self.models is not None)
        access = self._http_access(plan.config.http)  # a bad token file fails the reload
        events_changed = plan.config.events != self.config.events
        secrets = EventSenders.secrets(plan.config.events) if events_changed else None  # so does a bad secret
        if plan.engine is not None:  # its model loads in the background; until then the old one runs
            self.models.reload(plan.engine)
        new = plan.config
        logs.configure(new.logging.level, new.logging.file, new.logging.console)
        self._intake_settings = IntakeSettings.of(new.watcher)
        self._access = access
        self.config = new
        self._current = JobContext(self._current.matting, new)
        if secrets is not None:
            self.senders.replace(new.events, new.paths.state, secrets)
        log.info(
            "reload_done",
            model=self._current.model_label,
            profile=new.profile,
            model_loading=self.models is not None and self.models.reloading(),
        )

    def shutdown(self) -> None:
        """Tell systemd, stop the parts in reverse start order, release the lock; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self.notifier.stopping()
        log.info("daemon_stopping", queued=self.jobs.depth(), in_hand=self.jobs.in_hand())
        # HTTP first (no new requests; those in progress finish), batches (the file in hand
        # finishes; the task resumes at the next start), workers (the job in hand finishes),
        # intake, the observer, then the matting: queue answers already on their way are taken
        # for QUEUE_STOP_GRACE_S, the rest wait in incoming for the next start
        self.parts.stop()
        if self.models is not None:
            self.models.join()  # a model still loading finishes (seconds) rather than dying mid-read
        logging.getLogger("watchdog.observers").removeHandler(self.overflow_hook)
        self.status_file.write(self.report.status())
        self.instance.release()
        log.info("daemon_stopped", **self.stats.snapshot().outcomes)
