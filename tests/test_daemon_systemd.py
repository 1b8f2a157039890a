"""The daemon talking to a service manager: notify sequence, watchdog, reload, stop."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import DaemonProcess, wait_for
from tests.images import jpeg_bytes, write


class NotifyListener:
    """A bound AF_UNIX datagram socket standing in for systemd's notify socket."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.path = path
        self.messages: list[str] = []

    def poll(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    def states(self) -> list[str]:
        """First field of each message, heartbeats and status updates collapsed."""
        out: list[str] = []
        for message in self.poll():
            head = message.split("\n")[0].split("=")[0]
            if head in ("WATCHDOG", "STATUS") and out and out[-1] == head:
                continue
            out.append(head)
        return out


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(tmp_path / "notify.sock")
    yield listener
    listener.sock.close()


def test_notify_sequence_watchdog_reload_and_stop(make_config, listener: NotifyListener) -> None:
    """READY after start, WATCHDOG pings, RELOADING+MONOTONIC_USEC then READY on SIGHUP, STOPPING on SIGTERM."""
    env = {"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "1000000"}
    d = DaemonProcess(make_config(), env).start()
    wait_for(lambda: listener.poll() and "WATCHDOG=1" in listener.messages)
    ready = next(m for m in listener.messages if m.startswith("READY=1"))
    assert "STATUS=queued=0" in ready
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: d.events("reload_done"))
    wait_for(lambda: listener.poll().count("WATCHDOG=1") >= 3)
    assert d.stop() == 0
    states = listener.states()
    assert states[0] == "READY"
    reload_at = states.index("RELOADING")
    assert "WATCHDOG" in states[1:reload_at] and states[reload_at + 1] == "READY"
    assert states[-1] == "STOPPING"
    reloading = next(m for m in listener.messages if m.startswith("RELOADING=1"))
    assert reloading.split("\n")[1].startswith("MONOTONIC_USEC=")


def test_status_reports_counts(make_config, listener: NotifyListener) -> None:
    """STATUS= carries queue depth and counts, and state/status.json says the same."""
    d = DaemonProcess(make_config(), {"NOTIFY_SOCKET": str(listener.path)}).start()
    write(d.path("incoming") / "a.jpg", jpeg_bytes())
    wait_for(lambda: d.finished("done"))
    wait_for(lambda: any("done=1" in m for m in listener.poll()))
    wait_for(lambda: '"done": 1' in (d.path("state") / "status.json").read_text())
    assert d.stop() == 0


def test_reload_applies_new_profile_and_survives_a_bad_config(make_config) -> None:
    """SIGHUP re-reads the config: a valid change applies, an invalid one is logged and ignored."""
    config = make_config()
    d = DaemonProcess(config).start()
    data = yaml.safe_load(config.read_text())
    data["profile"] = "id_photo"
    config.write_text(yaml.safe_dump(data))
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: d.events("reload_done", profile="id_photo"))
    data["watcher"]["quiet_period_s"] = -5
    config.write_text(yaml.safe_dump(data))
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: d.events("reload_failed"))
    assert "quiet_period_s" in d.events("reload_failed")[0]["error"]
    write(d.path("incoming") / "after.jpg", jpeg_bytes())
    wait_for(lambda: d.finished("done"))
    assert d.finished("done")[0]["profile"] == "id_photo"
    assert d.stop() == 0


def test_sigint_exits_130(make_config) -> None:
    """Ctrl-C stops cleanly with the conventional exit code."""
    d = DaemonProcess(make_config()).start()
    assert d.stop(signal.SIGINT) == 130


def test_reload_with_a_model_that_fails_to_load_changes_nothing(make_config, tmp_path: Path) -> None:
    """A reload naming a broken model loads it off the main thread, fails, and keeps model and settings."""
    config = make_config()
    d = DaemonProcess(config).start()
    before = d.events("model_loaded")[0]["model"]
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    data = yaml.safe_load(config.read_text())
    data["engine"].update(model=str(broken), input_size=96)
    data["profile"] = "id_photo"
    config.write_text(yaml.safe_dump(data))
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: d.events("reload_failed"))
    assert "broken.pth" in d.events("reload_failed")[0]["error"]
    assert d.events("reload_done")[0]["model_loading"] is True
    write(d.path("incoming") / "after.jpg", jpeg_bytes())
    wait_for(lambda: d.finished("done"))
    done = d.finished("done")[0]
    assert done["model"] == before and done["profile"] == "id_photo"  # the rest of the reload applied
    assert d.stop() == 0


def test_reload_with_a_new_model_switches_once_loaded(make_config, tiny_model: Path, tmp_path: Path) -> None:
    """A reload naming another loadable model swaps to it after its background load."""
    config = make_config()
    d = DaemonProcess(config).start()
    other = tmp_path / "other.pth"
    other.write_bytes(tiny_model.read_bytes())  # the same weights under another name: another label
    data = yaml.safe_load(config.read_text())
    data["engine"]["model"] = str(other)
    config.write_text(yaml.safe_dump(data))
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: d.events("model_switched", reason="reload"))
    assert d.events("model_switched")[0]["model"].startswith("other.pth@")
    write(d.path("incoming") / "after.jpg", jpeg_bytes())
    wait_for(lambda: d.finished("done"))
    assert d.finished("done")[0]["model"].startswith("other.pth@")
    assert d.stop() == 0
