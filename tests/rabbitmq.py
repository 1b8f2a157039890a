"""A private RabbitMQ node for tests: Debian's ``rabbitmq-server`` on 127.0.0.1, free ports,
its own data directory, epmd and Erlang cookie, so it never meets a system node. Restartable
with the same data (durable queues and persistent messages survive), stopped at the end.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

SERVER = "/usr/sbin/rabbitmq-server"


class RabbitNode:
    def __init__(self) -> None:
        if not Path(SERVER).exists():
            pytest.skip("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
        if os.geteuid() != 0:
            pytest.skip("the rabbitmq-server wrapper runs the node as the rabbitmq user: needs root")
        # under /tmp itself: the node runs as the rabbitmq user, who cannot enter pytest's 0700 folders
        self.root = root = Path(tempfile.mkdtemp(prefix="unet-matting-rabbit-"))
        self.port, self.dist_port, self.epmd_port = free_port(), free_port(), free_port()
        self.name = f"unet{self.port}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self.proc: subprocess.Popen | None = None
        for sub in ("mnesia", "log"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "enabled_plugins").write_text("[].\n")
        (root / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\n"
            "consumer_timeout = 900000\n"  # 15 min: longer than any job (README: Scaling out)
            "log.console = false\nlog.file.level = warning\n"
        )
        rabbit = pwd.getpwnam("rabbitmq")
        for path in [root, *root.rglob("*")]:
            os.chown(path, rabbit.pw_uid, rabbit.pw_gid)
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(root / "log"),
            "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(root / "feature_flags"),
            "RABBITMQ_PID_FILE": str(root / "rabbit.pid"),
        }

    def start(self, timeout: float = 60) -> RabbitNode:
        self.proc = subprocess.Popen(
            [SERVER], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._end_epmd()  # the data directory stays for its logs
                raise RuntimeError(f"rabbitmq-server exited with {self.proc.returncode}; see {self.root / 'log'}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        self._end_epmd()
        raise RuntimeError(f"rabbitmq-server did not open port {self.port} within {timeout} s; see {self.root / 'log'}")

    def stop(self) -> None:
        """Stop the node (the data stays: ``start`` again for a broker restart)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        subprocess.run(["rabbitmqctl", "-n", self.name, "stop"], env=self.env, capture_output=True, timeout=60)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def close(self) -> None:
        self.stop()
        self._end_epmd()
        shutil.rmtree(self.root, ignore_errors=True)

    def _end_epmd(self) -> None:
        """The node's own epmd (on its private port) outlives the node: end it by the pid holding the port."""
        listing = subprocess.run(["ss", "-Hltnp", f"sport = :{self.epmd_port}"], capture_output=True, text=True).stdout
        for pid in set(re.findall(r"pid=(\d+)", listing)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)

    def queue(self, name: str) -> tuple[int, int]:
        """(messages ready, consumers) of a queue, through AMQP."""
        from kombu import Connection

        with Connection(self.url, connect_timeout=5) as conn:
            _, ready, consumers = conn.default_channel.queue_declare(name, passive=True)
            return ready, consumers
