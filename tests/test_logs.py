"""Structured logs: one prefixed JSON object per line, for structlog and stdlib records alike."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import structlog

from unet_matting.watcher import logs


def read(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    assert all(line.startswith(logs.PREFIX) for line in lines), lines
    return [json.loads(line.removeprefix(logs.PREFIX)) for line in lines]


def test_structlog_event_is_prefixed_json(tmp_path: Path) -> None:
    """A structlog event renders as [UNET-MATTING] {json} with ts, level, event and fields."""
    logs.configure("info", tmp_path / "a.log", console=False)
    structlog.get_logger("t").info("job_finished", file="é b.jpg", outcome="done", duration_ms=12.5)
    (entry,) = read(tmp_path / "a.log")
    assert entry["event"] == "job_finished" and entry["level"] == "info" and entry["ts"].endswith("Z")
    assert entry["file"] == "é b.jpg" and entry["duration_ms"] == 12.5


def test_stdlib_records_render_the_same_way(tmp_path: Path) -> None:
    """watchdog's overflow warning (a stdlib record) is a JSON line too."""
    logs.configure("info", tmp_path / "a.log", console=False)
    logging.getLogger("watchdog.observers.inotify_c").warning("Inotify queue overflowed; %s", "lost")
    (entry,) = read(tmp_path / "a.log")
    assert entry["event"] == "Inotify queue overflowed; lost" and entry["level"] == "warning"
    assert entry["logger"] == "watchdog.observers.inotify_c"


def test_tracebacks_carry_no_local_variables(tmp_path: Path) -> None:
    """Exceptions are structured, but the values of local variables are not logged."""
    logs.configure("info", tmp_path / "a.log", console=False)
    secret = "customer-secret-token"  # noqa: F841 - must not appear in the log
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("t").exception("job_error")
    text = (tmp_path / "a.log").read_text()
    (entry,) = read(tmp_path / "a.log")
    assert entry["exception"][0]["exc_type"] == "ValueError"
    assert "customer-secret-token" not in text


def test_file_handler_reopens_after_rotation(tmp_path: Path) -> None:
    """After the file is renamed away (logrotate create), new lines go to a new file."""
    log = tmp_path / "a.log"
    logs.configure("info", log, console=False)
    logger = structlog.get_logger("t")
    logger.info("before")
    log.rename(tmp_path / "a.log.1")
    logger.info("after")
    assert [e["event"] for e in read(tmp_path / "a.log.1")] == ["before"]
    assert [e["event"] for e in read(log)] == ["after"]


def test_level_filters(tmp_path: Path) -> None:
    """Below the configured level nothing is written."""
    logs.configure("warning", tmp_path / "a.log", console=False)
    structlog.get_logger("t").info("quiet")
    structlog.get_logger("t").warning("loud")
    assert [e["event"] for e in read(tmp_path / "a.log")] == ["loud"]
