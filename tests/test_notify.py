"""sd_notify on a real AF_UNIX datagram socket, through both backends."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from unet_matting.watcher.notify import Notifier, watchdog_interval_s


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


@pytest.mark.parametrize("use_systemd_python", [True, False])
def test_messages_arrive_in_order(notify_socket: socket.socket, use_systemd_python: bool) -> None:
    """READY, STATUS, RELOADING+MONOTONIC_USEC, WATCHDOG and STOPPING arrive as sent."""
    notifier = Notifier(use_systemd_python)
    if use_systemd_python:
        assert notifier.backend == "systemd-python"
    notifier.ready("idle")
    notifier.reloading()
    notifier.watchdog()
    notifier.stopping()
    got = [notify_socket.recv(4096).decode() for _ in range(4)]
    assert got[0] == "READY=1\nSTATUS=idle"
    assert got[1].startswith("RELOADING=1\nMONOTONIC_USEC=") and int(got[1].split("=")[-1]) > 0
    assert got[2:] == ["WATCHDOG=1", "STOPPING=1"]


def test_abstract_socket_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """An '@name' NOTIFY_SOCKET is an abstract socket; the fallback sender handles it."""
    name = f"unet-matting-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        Notifier(use_systemd_python=False).ready()
        assert sock.recv(100) == b"READY=1"


def test_no_socket_means_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside systemd nothing is sent and nothing fails."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    notifier.ready()


def test_watchdog_interval_is_half_and_pid_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ping at half of WATCHDOG_USEC, and only if WATCHDOG_PID (when set) is ours."""
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval_s() == 2.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert watchdog_interval_s() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval_s() == 2.0
    monkeypatch.delenv("WATCHDOG_USEC")
    assert watchdog_interval_s() is None
