"""The daemon: wiring, signals, systemd notification, ordered and idempotent shutdown.

Threads: the watchdog observer (events -> hints), ``intake`` (hints -> tracker -> jobs) and
``worker-N`` (jobs -> outputs). The main thread only handles signals, heartbeats and status.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import re
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from engine.errors import JobError, ModelError
from engine.session import Session
from watcher import __version__, logs
from watcher.batch_tasks import BatchTasks
from watcher.completion import CompletionTracker, IgnoreRules
from watcher.config import Config, load_config
from watcher.errors import ConfigError
from watcher.intake import Intake, IntakeSettings
from watcher.jobs import JobQueue
from watcher.matting import LocalMatting, in_mb
from watcher.metrics import Metrics
from watcher.models import ModelSwitcher, RetiredModels, load_session
from watcher.notify import Notifier, watchdog_interval_s
from watcher.observer import HintHandler, OverflowHook, make_observer
from watcher.output import remove_stale_temps
from watcher.secrets import read_secret
from watcher.state import STATUS_INTERVAL_S, AttemptLog, InstanceLock, StatusFile
from watcher.worker import JobContext, JobRunner, Stats, Worker

if TYPE_CHECKING:  # the HTTP side (FastAPI, uvicorn) and the queue (Celery) load only when configured
    from watcher.config import HttpConfig
    from watcher.http_api import Access, Health, HttpServer
    from watcher.remote import QueueStats

QUEUE_STOP_GRACE_S = 10.0  # on stop, how long answers of jobs in flight are still awaited
# http settings a running server cannot take (the socket, the gate, uvicorn's limits): restart
HTTP_RESTART_KEYS = ("listen", "max_pending", "request_timeout_s", "max_connections")

log = structlog.get_logger(__name__)


def intake_settings(cfg: Config) -> IntakeSettings:
    w = cfg.watcher
    return IntakeSettings(IgnoreRules(w.ignore_patterns), w.rescan_interval_s, w.quiet_period_s)


def startup_model(switcher: ModelSwitcher) -> Path:
    """The model a start loads; a control file naming a path, or a model that is not there, is a
    configuration error (exit 2, before any socket opens: a restart cannot fix it)."""
    try:
        path = switcher.wanted()
    except ModelError as e:
        raise ConfigError(str(e)) from None
    if not path.is_file():
        raise ConfigError(
            f"the model to run, {path}, is not installed; install it (unet-matting models pull NAME) "
            "or choose an installed one (unet-matting models use NAME)"
        )
    return path


def without_paths(text: str) -> str:
    """``text`` with absolute file-system paths cut to their last part (for unauthenticated readers)."""
    return re.sub(r"(?<![\w.])/[^\s:;,'\"()]+", lambda m: Path(m.group()).name, text)


def prepare_directories(cfg: Config) -> None:
    """Create the service's directories and drop temp files a crash left in them."""
    p = cfg.paths
    for directory in (p.incoming, p.output, p.archive, p.failed, p.state):
        directory.mkdir(parents=True, exist_ok=True)
    for directory in (p.output, p.archive, p.failed, p.state):
        if removed := remove_stale_temps(directory):
            log.info("stale_temp_files_removed", directory=str(directory), count=removed)


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
        self._reloading: tuple[ModelSwitcher, Config] | None = None  # a reload's model, loading
        self._current: JobContext | None = None  # None until the first model loaded
        self._ready_at: float | None = None
        self.http: HttpServer | None = None
        self.metrics = Metrics(
            queue_depth=lambda: self.jobs.depth(),
            in_flight=self._in_flight,
            gpu_memory=self._gpu_memory,
            broker=self._queue_stats,
        )
        self.retired = RetiredModels()  # swapped-out models whose GPU memory is not yet back
        self.models: ModelSwitcher | None = None  # local matting only: which model should run
        self._access: Access | None = None  # the HTTP side's token, body limit and batch roots
        self._incoming_id: int | None = None  # incoming's inode while it is there; None: missing

    def _gpu_memory(self) -> dict[str, int] | None:
        return self._current.matting.memory() if self._current is not None else None

    def _queue_stats(self) -> QueueStats | None:
        return self._current.matting.queue_stats() if self._current is not None else None

    def _context(self) -> JobContext | None:
        return self._current

    def _in_flight(self) -> int:
        return self.jobs.in_hand() + (self.http.gate.busy if self.http is not None else 0)

    def health(self) -> Health:
        """``/health``: ok once the model is loaded and every thread of the watcher is alive."""
        from watcher.http_api import Health

        ctx = self._current
        if ctx is None or self._ready_at is None:
            return Health(False, "starting: the model is loading", {})
        details = {
            "model": ctx.model_label,
            "queue_depth": self.jobs.depth(),
            "uptime_s": round(time.monotonic() - self._ready_at, 1),
            **ctx.matting.health(),
        }
        if self.models is not None and self.models.error:  # a switch failed; the old model serves: no outage
            details["last_model_error"] = without_paths(self.models.error)  # paths: log and status only
        problems = [f"threads not running: {', '.join(dead)}"] if (dead := self.dead_threads()) else []
        if self._incoming_id is None:
            problems.append("the incoming directory is missing; uploads cannot arrive")
        problems += ctx.matting.problems()
        return Health(not problems, "; ".join(problems), details)

    @staticmethod
    def _access_for(http: HttpConfig) -> Access:
        """What HTTP requests are checked against; a token file others can read is refused."""
        from watcher.http_api import Access

        token = read_secret(http.token_file, "http.token_file") if http.token_file else None
        return Access(token, http.max_body_bytes, http.batch_roots)

    def _start_http(self, cfg: Config) -> None:
        """The HTTP side, before the model loads, so /health can say it is loading."""
        from watcher.http_api import HttpServer, build_app

        self._access = self._access_for(cfg.http)
        self.batch = BatchTasks(cfg.paths.state, self._context, IgnoreRules(cfg.watcher.ignore_patterns), self.metrics)
        app = build_app(
            self._context, self.health, self.metrics, lambda: self._access, cfg.http.max_pending, self.batch
        )
        self.http = HttpServer(app, *cfg.http.listen, cfg.http.request_timeout_s, cfg.http.max_connections)
        self.http.gate = app.state.gate
        self.http.start()
        if not self.http.wait_started():
            raise JobError(
                f"the HTTP server could not listen on {cfg.http.listen[0]}:{cfg.http.listen[1]} "
                "(address in use, or not allowed)"
            )
        log.info(
            "http_listening", host=cfg.http.listen[0], port=cfg.http.listen[1], token=self._access.token is not None
        )

    def start(self) -> None:
        cfg = self.config
        cfg.paths.state.mkdir(parents=True, exist_ok=True)
        self.instance = InstanceLock(cfg.paths.state)
        self.instance.acquire()  # before touching any file, and before the model loads
        prepare_directories(cfg)
        self._incoming_id = _directory_id(cfg.paths.incoming)
        model = None
        if cfg.queue.broker_url is None:
            self.models = self._switcher(cfg)
            model = startup_model(self.models)  # before any socket opens
        if cfg.http.listen is not None:
            self._start_http(cfg)
        if cfg.queue.broker_url is not None:  # workers matte; this process sends jobs and writes results
            from watcher.remote import RemoteMatting

            remote = RemoteMatting(cfg.queue)
            remote.start()
            self._current = JobContext(remote, cfg)
            log.info("queue_mode", jobs=cfg.queue.jobs, results=remote.results_name, in_flight=cfg.watcher.workers)
        else:
            session = load_session(cfg.engine, model)
            self._current = JobContext(LocalMatting(session), cfg)
            self._model_loaded(session)
        self.attempts = AttemptLog(cfg.paths.state)
        self.status_file = StatusFile(cfg.paths.state)
        self.runner = JobRunner(
            self._context,
            self.attempts,
            self.stats,
            recheck=lambda path, at: self.intake.recheck(path, at),
            metrics=self.metrics,
        )
        hints: queue.SimpleQueue = queue.SimpleQueue()
        self.tracker = CompletionTracker(cfg.watcher.quiet_period_s, time.monotonic)
        self._intake_settings = intake_settings(cfg)
        self.intake = Intake(cfg.paths.incoming, hints, self.tracker, self.jobs, lambda: self._intake_settings)
        self.overflow_hook = OverflowHook(lambda: self.intake.request_rescan("inotify_overflow", events_lost=True))
        logging.getLogger("watchdog.observers").addHandler(self.overflow_hook)
        self._hint_handler = HintHandler(hints)
        self.observer = make_observer(
            cfg.watcher.observer, cfg.paths.incoming, self._hint_handler, cfg.watcher.polling_interval_s
        )
        self.workers = [Worker(i, self.jobs, self.runner) for i in range(cfg.watcher.workers)]
        self.observer.start()  # before the scan, so nothing lands unseen between the two
        self.intake.start()
        for worker in self.workers:
            worker.start()
        if self.http is not None:
            self.batch.start()  # after the model loaded: unfinished tasks resume here
        self.intake.request_rescan("startup")
        log.info(
            "daemon_ready",
            version=__version__,
            incoming=str(cfg.paths.incoming),
            observer=cfg.watcher.observer,
            workers=len(self.workers),
            profile=cfg.profile,
        )
        self.status_file.write(self.status_dict())
        self._ready_at = time.monotonic()
        self.notifier.ready(self.status_text())

    def _model_loaded(self, session: Session) -> None:
        log.info(
            "model_loaded",
            model=session.info.label,
            arch=session.info.arch,
            device=str(session.device),
            input_size=session.input_size,
            max_batch=session.max_batch,
        )
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

    def _switcher(self, cfg: Config) -> ModelSwitcher:
        return ModelSwitcher(
            cfg.engine.models_dir, cfg.engine.settings.model, lambda path: load_session(cfg.engine, path)
        )

    def _switch_model(self) -> None:
        if self.models is None:  # queue mode: the workers switch their own models
            return
        if self._reloading is not None:
            self._finish_reload(*self._reloading)
            return
        current = self._current.matting.session
        session = self.models.poll(current.path)
        if session is not None:
            self._current = JobContext(LocalMatting(session), self._current.config)
            log.info("model_switched", model=session.info.label, previous=current.info.label)
            self.metrics.model_loaded(session)
            self.retired.retire(current)

    def _tick(self, heartbeat: bool) -> None:
        self._watch_incoming()
        self._switch_model()
        if self.retired.release_when_unused():
            log.info("model_memory_released", gpu_memory_mb=in_mb(self._gpu_memory()))
        dead = self.dead_threads()
        if dead:
            log.error("threads_dead", threads=dead)
        elif heartbeat:
            self.notifier.watchdog()
        status = self.status_text()
        self.notifier.status(status)
        self.status_file.write(self.status_dict())

    def _watch_incoming(self) -> None:
        """Report incoming when it disappears; when it is back (or replaced), watch it afresh:
        inotify's watches die with the directory they were on."""
        now = _directory_id(self.config.paths.incoming)
        if now == self._incoming_id:
            return
        if now is None:
            log.error(
                "incoming_missing",
                incoming=str(self.config.paths.incoming),
                action="uploads wait; watching resumes when the directory is back",
            )
        else:
            log.info("incoming_restored", incoming=str(self.config.paths.incoming), action="watching it again")
            self._rewatch()
        self._incoming_id = now

    def _rewatch(self) -> None:
        cfg = self.config
        self.observer.stop()
        self.observer.join()
        self.observer = make_observer(
            cfg.watcher.observer, cfg.paths.incoming, self._hint_handler, cfg.watcher.polling_interval_s
        )
        self.observer.start()
        self.intake.request_rescan("incoming_restored")

    def dead_threads(self) -> list[str]:
        threads = [
            self.observer,
            self.intake,
            *self.workers,
            *([self.batch] if self.http is not None else []),
            *self._current.matting.threads(),
        ]
        return [t.name for t in threads if not t.is_alive()]

    def status_dict(self) -> dict:
        counts = self.stats.snapshot()
        return {
            "pid": os.getpid(),
            "time": time.time(),
            "queued": self.jobs.depth(),
            "in_hand": self.jobs.in_hand(),
            "tracked": len(self.tracker),
            "outcomes": dict(counts.outcomes),
            "last": {"file": counts.last_file, "outcome": counts.last_outcome},
            "model": self._current.model_label,
            "profile": self._current.config.profile,
            "problems": self._problems(),
            **self._current.matting.status(),
        }

    def _problems(self) -> list[str]:
        """What an operator must fix, with paths (status.json is not served over HTTP)."""
        problems = []
        if self._incoming_id is None:
            problems.append(f"paths.incoming {self.config.paths.incoming} is missing; uploads cannot arrive")
        if self.models is not None and self.models.error:
            problems.append(f"the last model switch failed: {self.models.error}")
        return problems

    def status_text(self) -> str:
        s = self.stats.snapshot().outcomes
        text = (
            f"queued={self.jobs.depth()} in_hand={self.jobs.in_hand()} tracked={len(self.tracker)} "
            f"done={s['done']} quarantined={s['quarantined']} waiting={s['waiting']} errors={s['error']}"
        )
        if (broker := self._queue_stats()) is not None:
            text += (
                f" broker={'up' if broker.connected else 'DOWN'} jobs_ready={broker.jobs_ready} "
                f"workers={broker.workers} dead={broker.dead}"
            )
        return text

    def reload(self) -> None:
        """SIGHUP: RELOADING=1, re-read config and model, READY=1; a bad config changes nothing."""
        self.notifier.reloading()
        log.info("reload_started", config=str(self.config_path))
        try:
            self._apply(load_config(self.config_path))
        except (ConfigError, ModelError) as e:
            log.error("reload_failed", error=str(e), kept="previous configuration and model")
        self.notifier.ready(self.status_text())

    def _apply(self, new: Config) -> None:
        old = self.config
        fixed = {
            "paths": old.paths,
            "watcher": dataclasses.replace(new.watcher, observer=old.watcher.observer, workers=old.watcher.workers),
        }
        if new.paths != old.paths or new.watcher.observer != old.watcher.observer:
            log.warning("reload_needs_restart", keys="paths, watcher.observer", kept="old values")
        if new.queue != old.queue:
            log.warning("reload_needs_restart", keys="queue", kept="old values")
        fixed["http"], access = self._reload_http(old.http, new.http)
        new = dataclasses.replace(new, **fixed, queue=old.queue)
        # a new engine's model loads in the background; until then the old one runs (queue mode: no model here)
        if new.engine != old.engine and self.models is not None:
            self._start_reload(self._switcher(new), new)
            new = dataclasses.replace(new, engine=old.engine)
        logs.configure(new.logging.level, new.logging.file, new.logging.console)
        self._intake_settings = intake_settings(new)
        self._access = access
        self.config = new
        self._current = JobContext(self._current.matting, new)
        log.info(
            "reload_done",
            model=self._current.model_label,
            profile=new.profile,
            model_loading=self._reloading is not None,
        )

    def _reload_http(self, old: HttpConfig, new: HttpConfig) -> tuple[HttpConfig, Access | None]:
        """The http section a reload applies: the token (re-read; a bad file fails the whole
        reload), the body limit and the batch roots take effect at once; the rest need a restart."""
        changed = [k for k in HTTP_RESTART_KEYS if getattr(new, k) != getattr(old, k)]
        if changed:
            log.warning("reload_needs_restart", keys=", ".join(f"http.{k}" for k in changed), kept="old values")
        applied = dataclasses.replace(new, **{k: getattr(old, k) for k in HTTP_RESTART_KEYS})
        return applied, (self._access_for(applied) if self.http is not None else None)

    def _start_reload(self, switcher: ModelSwitcher, new: Config) -> None:
        """Load the reloaded engine settings' model off the main thread (watchdog pings go on)."""
        if self._reloading is not None:
            self._reloading[0].join()
        switcher.start(switcher.wanted())
        self._reloading = (switcher, new)

    def _finish_reload(self, switcher: ModelSwitcher, new: Config) -> None:
        """Swap in the reloaded model and engine settings once loaded; a failed load changes nothing."""
        if switcher.loading():
            return
        session = switcher.take_ready()
        self._reloading = None
        if session is None:
            log.error("reload_failed", error=switcher.error, kept="previous engine settings and model")
            return
        self.models = switcher
        self.config = dataclasses.replace(self.config, engine=new.engine)
        self.retired.retire(self._current.matting.session)
        self._current = JobContext(LocalMatting(session), self.config)
        log.info("model_switched", model=session.info.label, reason="reload")
        self.metrics.model_loaded(session)

    def shutdown(self) -> None:
        """Stop intake, let workers finish the file in hand, tell systemd; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self.notifier.stopping()
        log.info("daemon_stopping", queued=self.jobs.depth(), in_hand=self.jobs.in_hand())
        if self.http is not None:  # no new requests; those in progress finish (uvicorn's grace)
            self.http.stop()
            self.http.join()
            self.batch.stop()  # the file in hand finishes; the task resumes at the next start
            self.batch.join()
        self.observer.stop()
        self.intake.stop()
        for worker in self.workers:
            worker.stop()
        # queue mode: answers already on their way are taken; then the rest wait for the next start
        self._current.matting.abandon_waits(after_s=QUEUE_STOP_GRACE_S)
        self.observer.join()
        for thread in (self.intake, *self.workers):
            thread.join()
        self._current.matting.stop()
        if self.models is not None:
            self.models.join()  # a model still loading finishes (seconds) rather than dying mid-read
        if self._reloading is not None:
            self._reloading[0].join()
        logging.getLogger("watchdog.observers").removeHandler(self.overflow_hook)
        self.status_file.write(self.status_dict())
        self.instance.release()
        log.info("daemon_stopped", **self.stats.snapshot().outcomes)


def _directory_id(path: Path) -> int | None:
    """The inode of the directory at ``path``; None when there is none."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino if path.is_dir() else None
