"""A throwaway OpenSSH server on 127.0.0.1 with internal-sftp, and real sftp/rsync clients."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import free_port

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


class SshServer:
    """sshd -D on a free loopback port, key auth only, host key made for this run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.user = getpass.getuser()
        self.key = root / "client_key"
        self.proc: subprocess.Popen | None = None

    def start(self) -> SshServer:
        self.root.mkdir(parents=True, exist_ok=True)
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.root / name)], check=True)
        (self.root / "authorized_keys").write_text((self.root / "client_key.pub").read_text())
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
        config = self.root / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.root / 'host_key'}",
                    f"PidFile {self.root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
                    "StrictModes no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "LogLevel INFO",
                    "Subsystem sftp internal-sftp -u 0007 -l INFO",
                    "",
                ]
            )
        )
        self.log = open(self.root / "sshd.log", "wb")  # noqa: SIM115 - lives as long as sshd, closed in stop()
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError((self.root / "sshd.log").read_text())
            time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    def ssh_options(self) -> list[str]:
        return [
            "-i",
            str(self.key),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
        ]

    def sftp(self, commands: list[str], limit_kbit: int | None = None, background: bool = False):
        """Run sftp with a batch of commands (absolute remote paths)."""
        batch = self.root / f"batch-{time.monotonic_ns()}"
        batch.write_text("\n".join(commands) + "\n")
        argv = ["sftp", "-b", str(batch), "-P", str(self.port), *self.ssh_options()]
        if limit_kbit:
            argv += ["-l", str(limit_kbit)]
        argv.append(f"{self.user}@127.0.0.1")
        if background:
            return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)

    def rsync(self, source: Path, remote_dir: Path) -> None:
        """Real rsync over this sshd: writes a .name.XXXXXX temp file, then renames it."""
        ssh = " ".join(["ssh", "-p", str(self.port), *self.ssh_options()])
        subprocess.run(
            ["rsync", "-e", ssh, str(source), f"{self.user}@127.0.0.1:{remote_dir}/"],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


def internal_sftp_log(server: SshServer) -> str:
    return (server.root / "sshd.log").read_text(errors="replace")


def can_run_sshd() -> str | None:
    """Why sshd tests cannot run here, or None."""
    if not os.path.exists(SSHD) or not shutil.which("sftp"):
        return "OpenSSH server/client not installed (apt-get install openssh-server openssh-client)"
    if os.geteuid() != 0:
        return "sshd with privilege separation needs root here"
    return None
