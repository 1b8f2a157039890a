"""The model that runs in this process, kept current: one switch path for the daemon and the
queue worker.

``poll`` (called from a housekeeping loop) hands over a newly loaded session exactly once: when
the control file names another model (``models use``), or when a reload's engine settings asked
for one (``reload``: the new settings' model loads in the background while the old one works).
A load that fails changes nothing; its reason stays in ``error`` until the next success.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from unet_matting.engine.errors import ModelError
from unet_matting.watcher.errors import ConfigError
from unet_matting.watcher.models.active import ModelSwitcher, load_session

if TYPE_CHECKING:
    from unet_matting.engine.session import Session
    from unet_matting.watcher.config import EngineConfig

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Switched:
    """A switch that just happened: the new session, the one it replaced, and (after a reload)
    the engine section that now applies."""

    session: Session
    previous: Session
    engine: EngineConfig | None = None


class ModelKeeper:
    """Holds the current session and the switcher that decides which model should run."""

    def __init__(self, switcher: ModelSwitcher, session: Session) -> None:
        self.switcher, self.session = switcher, session
        self._reload: tuple[ModelSwitcher, EngineConfig] | None = None  # a reload's model, loading

    @property
    def error(self) -> str | None:
        """Why the last switch failed (None after a success)."""
        return self.switcher.error

    def reload(self, engine: EngineConfig) -> None:
        """Start loading the model a reload's new ``engine:`` section wants."""
        if self._reload is not None:
            self._reload[0].join()
        switcher = switcher_for(engine)
        switcher.start(switcher.wanted())
        self._reload = (switcher, engine)

    def reloading(self) -> bool:
        return self._reload is not None

    def poll(self) -> Switched | None:
        """A switch, once, when a new model is ready; None otherwise (a failed load is logged)."""
        if self._reload is not None:
            return self._finish_reload(*self._reload)
        ready = self.switcher.poll(self.session.path)
        if ready is None:
            return None
        previous, self.session = self.session, ready
        log.info("model_switched", model=ready.info.label, previous=previous.info.label, precision=ready.precision)
        log_precision_check(ready)
        return Switched(ready, previous)

    def _finish_reload(self, switcher: ModelSwitcher, engine: EngineConfig) -> Switched | None:
        if switcher.loading():
            return None
        self._reload = None
        ready = switcher.take_ready()
        if ready is None:
            log.error("reload_failed", error=switcher.error, kept="previous engine settings and model")
            return None
        self.switcher = switcher
        previous, self.session = self.session, ready
        log.info("model_switched", model=ready.info.label, reason="reload", precision=ready.precision)
        log_precision_check(ready)
        return Switched(ready, previous, engine)

    def join(self) -> None:
        """Wait for a model still loading (seconds) rather than let it die mid-read."""
        self.switcher.join()
        if self._reload is not None:
            self._reload[0].join()


def log_precision_check(session: Session, **fields: object) -> None:
    """The load's comparison of the chosen precision with fp32 (engine/precision.py): info when it
    held, a warning when the session fell back to fp32."""
    check = session.precision_check
    if check is None:
        return
    figures = {
        "wanted": check.wanted,
        "used": check.used,
        "max_difference": round(check.max_difference, 4),
        "mean_difference": round(check.mean_difference, 5),
        "flipped": round(check.flipped, 5),
        **fields,
    }
    if check.passed:
        log.info("precision_checked", model=session.info.label, **figures)
    else:
        log.warning(
            "precision_fallback",
            model=session.info.label,
            reason=f"{check.wanted} differs from fp32 by more than the tolerance on the test image; running fp32",
            **figures,
        )


def switcher_for(engine: EngineConfig) -> ModelSwitcher:
    """The switcher for an ``engine:`` section: its models_dir, engine.model and loader."""
    return ModelSwitcher(engine.models_dir, engine.settings.model, lambda path: load_session(engine, path))


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
