"""sd_notify: ``systemd.daemon.notify`` (systemd-python) with a plain datagram fallback.

Without ``$NOTIFY_SOCKET`` (not started by systemd) every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)


def _systemd_sender() -> Callable[[str], bool] | None:
    try:
        from systemd import daemon  # type: ignore[import-not-found]
    except ImportError:
        return None
    return lambda state: bool(daemon.notify(state))


def _socket_send(state: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(state.encode())
    return True


def watchdog_interval_s() -> float | None:
    """Half of ``$WATCHDOG_USEC`` when the watchdog is meant for this process, else None."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


class Notifier:
    """Sends state strings to the service manager; failures are logged, never raised."""

    def __init__(self, use_systemd_python: bool = True) -> None:
        sender = _systemd_sender() if use_systemd_python else None
        self.backend = "systemd-python" if sender else "socket"
        self._send = sender or _socket_send
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))

    def send(self, *fields: str) -> None:
        if not self.enabled:
            return
        try:
            self._send("\n".join(fields))
        except OSError as e:
            log.warning("sd_notify_failed", error=str(e), state=fields[0])

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> None:
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")
