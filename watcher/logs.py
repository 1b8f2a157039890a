"""Logging, configured in exactly one place: every line is ``[UNET-MATTING] {json}``.

structlog events and stdlib records (watchdog, PIL, torch) go through one ``ProcessorFormatter``
so both render the same way. The file handler is a ``WatchedFileHandler``: after logrotate's
``create`` moves the file away, the next record reopens the path and nothing is lost.
Tracebacks are rendered as dicts without local variables (they can hold customer data).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
from pathlib import Path
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer

PREFIX = "[UNET-MATTING] "
_HANDLER_MARK = "_unet_matting_handler"


def render_line(_logger: Any, _name: str, event_dict: dict[str, Any]) -> str:
    """Final processor: the fixed prefix, then the event as one line of JSON."""
    return PREFIX + json.dumps(event_dict, default=str, ensure_ascii=False)


def _pre_chain() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
    ]


def _formatter() -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_pre_chain(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
            render_line,
        ],
    )


def _handlers(file: Path | None, console: bool) -> list[logging.Handler]:
    handlers: list[logging.Handler] = []
    if console:
        handlers.append(logging.StreamHandler())
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.WatchedFileHandler(file, encoding="utf-8"))
    return handlers


def configure(level: str = "info", file: Path | None = None, console: bool = True) -> None:
    """(Re)configure logging; safe to call again on reload, it replaces its own handlers."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(handler)
        handler.close()
    formatter = _formatter()
    for handler in _handlers(file, console):
        setattr(handler, _HANDLER_MARK, True)
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("PIL").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    structlog.configure(
        processors=[*_pre_chain(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
