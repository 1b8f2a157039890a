"""Which model runs, and live switching: ``<models_dir>/active_model`` names the model to run.

Choice, in order: the file ``active_model`` names (``models use``), else ``engine.model`` when it
is a path, else (``engine.model: auto``) the installed catalogue model of highest rank whose
licence allows commercial use, else the shipped U²-Net-P. ``load_session`` is the one way every
command builds a session from the configuration.

The daemon polls the control file (and re-checks on SIGHUP). A newly named model is loaded and
warmed up on a background thread while the old one keeps working; the switch is one reference
assignment that each job reads once at its start, so no file is processed half by one model and
half by the other. A model that fails to load leaves the old one active and is not retried until
the control file or the model file changes.
"""

from __future__ import annotations

import dataclasses
import gc
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from unet_matting.engine.catalogue import SHIPPED_MODEL, Entry, catalogue
from unet_matting.engine.errors import ModelError
from unet_matting.engine.settings import EngineSettings

if TYPE_CHECKING:  # the session (and torch) load only when a command runs a model
    from unet_matting.engine.session import Session

log = structlog.get_logger(__name__)
CONTROL_FILE = "active_model"


def _identity(path: Path) -> tuple:
    try:
        st = path.stat()
    except OSError:
        return ()
    return st.st_ino, st.st_size, st.st_mtime_ns


def installed(models_dir: Path | None) -> list[Entry]:
    """Catalogue models whose file is in ``models_dir``, best first."""
    if models_dir is None:
        return []
    found = [e for e in catalogue().values() if (models_dir / e.file).is_file()]
    return sorted(found, key=lambda e: -e.rank)


def best_installed(models_dir: Path | None) -> Path:
    """``engine.model: auto``: the best installed model a shop may use commercially, else the shipped one."""
    usable = [e for e in installed(models_dir) if e.commercial]
    return models_dir / usable[0].file if usable and models_dir is not None else SHIPPED_MODEL


def active_model(models_dir: Path | None, configured: Path | None) -> Path:
    """The model ``<models_dir>/active_model`` names, else ``engine.model``, else the best installed.

    Raises ``ModelError`` when the control file holds anything but a file name (a path, ``..``).
    """
    fallback = configured if configured is not None else best_installed(models_dir)
    if models_dir is None:
        return fallback
    try:
        name = (models_dir / CONTROL_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return fallback
    return named_model(models_dir, name) if name else fallback


def named_model(models_dir: Path, name: str) -> Path:
    """The file a model name stands for: a file name in ``models_dir``, or the shipped model by
    its own file name (``models use u2netp-products``). Paths are refused: the control file
    confines the daemon to ``models_dir``."""
    if name in (".", "..") or Path(name).name != name or "\0" in name:
        raise ModelError(
            f"{models_dir / CONTROL_FILE} names {name}, which is not a file name in "
            "engine.models_dir; choose a model with: unet-matting models use NAME"
        )
    if name == SHIPPED_MODEL.name and not (models_dir / name).exists():
        return SHIPPED_MODEL
    return (models_dir / name).resolve()


def engine_settings(cfg, model: Path | None = None) -> EngineSettings:
    """The engine's settings for ``cfg`` (an ``EngineConfig``) and the active model, or ``model``."""
    chosen = model.resolve() if model is not None else active_model(cfg.models_dir, cfg.settings.model)
    return dataclasses.replace(cfg.settings, model=chosen)


def load_session(cfg, model: Path | None = None, input_size: int | None = None) -> Session:
    """The one way a command builds its session: the active model (or ``model``), warmed up."""
    from unet_matting.engine.session import Session

    settings = engine_settings(cfg, model)
    if input_size is not None:
        settings = dataclasses.replace(settings, input_size=input_size)
    return Session.load(settings)


class ModelSwitcher:
    """Decides which model should be active and loads it off the main thread."""

    def __init__(self, models_dir: Path | None, fallback: Path | None, load: Callable[[Path], Session]) -> None:
        self.models_dir, self.fallback, self._load = models_dir, fallback, load
        self._seen: tuple = ()
        self._thread: threading.Thread | None = None
        self._ready: Session | None = None
        self.error: str | None = None  # why the last load failed
        self._lock = threading.Lock()

    def wanted(self) -> Path:
        return active_model(self.models_dir, self.fallback)

    def poll(self, current: Path) -> Session | None:
        """Start loading if the wanted model changed; return a loaded session once, when ready."""
        ready = self.take_ready()
        if ready is not None:
            return ready
        try:
            wanted = self.wanted()
        except ModelError as e:  # the control file names a path: refused, the current model runs on
            if self.error != str(e):
                log.error("model_load_failed", error=str(e), kept="the active model")
                self.error = str(e)
            return None
        key = (wanted, _identity(wanted), _identity(self.models_dir / CONTROL_FILE) if self.models_dir else ())
        if wanted == current or key == self._seen or (self._thread and self._thread.is_alive()):
            if wanted == current:
                self._seen = key
            return None
        self._seen = key
        self.start(wanted)
        return None

    def start(self, path: Path) -> None:
        """Load ``path`` in the background; ``take_ready`` hands the session over once loaded."""
        self.error = None
        self._thread = threading.Thread(target=self._load_in_background, args=(path,), name="model-loader", daemon=True)
        self._thread.start()

    def take_ready(self) -> Session | None:
        with self._lock:
            ready, self._ready = self._ready, None
        return ready

    def loading(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _load_in_background(self, path: Path) -> None:
        log.info("model_loading", model=str(path))
        try:
            session = self._load(path)
        except ModelError as e:
            log.error("model_load_failed", model=str(path), error=str(e), kept="the active model")
            self.error = str(e)
            return
        with self._lock:
            self._ready = session

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


class RetiredModels:
    """Swapped-out CUDA models: their cached GPU memory goes back to the driver once the last
    job that started on them has ended (the daemon asks at every status tick)."""

    def __init__(self) -> None:
        self._refs: list[weakref.ref[Session]] = []

    def retire(self, session: Session) -> None:
        if session.device.type == "cuda":
            self._refs.append(weakref.ref(session))

    def release_when_unused(self) -> bool:
        """True when memory was released just now."""
        if not self._refs:
            return False
        gc.collect()  # a model's modules can sit in reference cycles
        if any(ref() is not None for ref in self._refs):
            return False  # a job that started on an old model is still running
        from unet_matting.engine.session import release_cached_memory

        self._refs.clear()
        release_cached_memory()
        return True
