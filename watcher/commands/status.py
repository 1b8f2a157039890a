"""``unet-matting status``: what the daemon is doing, read from ``<state>/status.json``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from unet_matting.watcher.config import load_config
from unet_matting.watcher.review.queue import ReviewQueue
from unet_matting.watcher.state import STATUS_FILE, STATUS_INTERVAL_S

STALE_AFTER_S = 10 * STATUS_INTERVAL_S


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user (the service account)
    return True


def running_status(cfg) -> dict | None:
    """The running daemon's ``status.json`` (its pid alive, the file fresh), else None."""
    try:
        status = json.loads((cfg.paths.state / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    fresh = time.time() - float(status.get("time", 0)) < STALE_AFTER_S
    return status if fresh and _alive(int(status.get("pid", 0))) and status.get("model") else None


def run_status(config_path: Path) -> int:
    """Print the daemon's state; exit 1 if it is not running or its status is stale."""
    cfg = load_config(config_path)
    path = cfg.paths.state / STATUS_FILE
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        print(f"not running: no {path} (the daemon has never run with this config)")
        return 1
    age = time.time() - float(status.get("time", 0))
    running = _alive(int(status.get("pid", 0))) and age < STALE_AFTER_S
    outcomes = status.get("outcomes", {})
    last = status.get("last", {})
    print(f"{'running' if running else 'NOT RUNNING'}: pid {status.get('pid')}, status {age:.0f} s old")
    print(
        f"queue: {status.get('queued', 0)} queued, {status.get('in_hand', 0)} in hand, "
        f"{status.get('tracked', 0)} uploads settling"
    )
    print("counts: " + (", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())) or "none yet"))
    print(f"last file: {last.get('file') or '-'} ({last.get('outcome') or '-'})")
    precision = f", precision {status['precision']}" if status.get("precision") else ""
    processes = f", {status['processes']} render processes" if status.get("processes") else ""
    print(f"model: {status.get('model')}{precision}{processes}, profile: {status.get('profile')}")
    if (broker := status.get("queue")) is not None:
        print(broker_line(broker))
    failed = quarantined(cfg.paths.failed)
    print(
        f"quarantined files waiting for an operator: {len(failed)}"
        + (f" (newest: {failed[-1].relative_to(cfg.paths.failed)})" if failed else "")
    )
    for name, figures in (status.get("events") or {}).items():
        print(event_line(name, figures))
    held = ReviewQueue.of(cfg.paths).items()
    print(
        f"held for review: {len(held)}"
        + (f" (oldest: {held[0].id}, score {held[0].record.get('score')}; unet-matting review list)" if held else "")
    )
    return 0 if running else 1


def event_line(endpoint: str, figures: dict) -> str:
    """One endpoint's events in one sentence."""
    line = f"events to {endpoint}: {figures.get('pending', 0)} waiting, {figures.get('dead', 0)} dead (outbox/dead/)"
    return line + (f"; last failure: {figures['last_error']}" if figures.get("last_error") else "")


def broker_line(broker: dict) -> str:
    """Queue mode: the broker's state in one sentence."""
    if not broker.get("connected"):
        return f"broker: UNREACHABLE; {broker.get('waiting', 0)} jobs of this watcher wait for answers"
    return (
        f"broker: connected, {broker.get('jobs_ready')} jobs waiting for a worker, "
        f"{broker.get('workers')} workers connected, {broker.get('waiting', 0)} jobs of this watcher "
        f"in flight, {broker.get('dead')} dead-lettered"
    )


def quarantined(failed_dir: Path) -> list[Path]:
    """Quarantined files that are still there (a report whose file was moved back is no longer one),
    oldest first by the time they were quarantined."""
    if not failed_dir.is_dir():
        return []
    files = []
    for report in failed_dir.rglob("*.error.json"):
        image = report.with_name(report.name.removesuffix(".error.json"))
        if not (image.exists() or image.is_symlink()):
            continue
        try:
            files.append((report.stat().st_mtime_ns, image))
        except FileNotFoundError:  # moved back between the listing and now
            continue
    return [image for _, image in sorted(files)]
