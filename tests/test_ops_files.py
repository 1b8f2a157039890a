"""The shipped systemd unit and logrotate file, checked with the real tools."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

UNIT = REPO / "systemd" / "unet-matting.service"
LOGROTATE = REPO / "logrotate" / "unet-matting"
needs = pytest.mark.skipif(
    not os.environ.get("CI") and not shutil.which("systemd-analyze"), reason="systemd-analyze not installed"
)


def local_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's venv (verify needs the binary to exist)."""
    binary = Path(sys.executable).parent / "unet-matting"
    unit = tmp_path / "unet-matting.service"
    unit.write_text(UNIT.read_text().replace("/opt/unet-matting/venv/bin/unet-matting", str(binary)))
    return unit


@needs
def test_unit_verifies_without_any_output(tmp_path: Path) -> None:
    """systemd-analyze verify prints nothing at all (it exits 0 even on unknown keys)."""
    result = subprocess.run(["systemd-analyze", "verify", str(local_unit(tmp_path))], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stderr


@needs
def test_unit_security_exposure_at_most_2(tmp_path: Path) -> None:
    """systemd-analyze security --offline=yes rates the unit 2.0 or lower."""
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(local_unit(tmp_path))], capture_output=True, text=True
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0


def test_unit_has_the_operational_contract() -> None:
    """notify type, watchdog, reload by SIGHUP, no restart on config errors, GPU not hidden."""
    text = UNIT.read_text()
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "KillMode=mixed",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "DeviceAllow=/dev/nvidiactl rw",
    ]:
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line
    assert re.search(r"^WatchdogSec=\d+", text, re.M) and re.search(r"^ExecStartPre=.* check ", text, re.M)
    assert not re.search(r"^PrivateDevices=", text, re.M)


def rotate_config(tmp_path: Path, log_dir: Path) -> Path:
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    group = subprocess.run(["id", "-gn"], capture_output=True, text=True, check=True).stdout.strip()
    text = LOGROTATE.read_text().replace("/var/log/unet-matting", str(log_dir))
    text = text.replace("unet-matting unet-matting", f"{user} {group}")
    conf = tmp_path / "logrotate.conf"
    conf.write_text(text)
    return conf


WRITER = """
import sys, time, structlog
from pathlib import Path
from unet_matting.watcher import logs
logs.configure("info", Path(sys.argv[1]), console=False)
log = structlog.get_logger("writer")
for i in range(int(sys.argv[2])):
    log.info("tick", seq=i)
    time.sleep(0.002)
"""


@pytest.mark.skipif(not os.environ.get("CI") and not shutil.which("logrotate"), reason="logrotate not installed")
def test_logrotate_create_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """Real logrotate -f, three times, while a writer logs a steady stream: every line exactly once."""
    log_dir = tmp_path / "log"
    log_dir.mkdir(mode=0o750)
    conf = rotate_config(tmp_path, log_dir)
    debug = subprocess.run(
        ["logrotate", "-d", "-s", str(tmp_path / "state"), str(conf)], capture_output=True, text=True
    )
    assert "error:" not in debug.stdout + debug.stderr, debug.stderr
    count = 2000
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log_dir / "unet-matting.log"), str(count)], cwd=REPO)
    rotations = 0
    while writer.poll() is None and rotations < 3:
        if (log_dir / "unet-matting.log").exists() and (log_dir / "unet-matting.log").stat().st_size > 4096:
            subprocess.run(["logrotate", "-f", "-s", str(tmp_path / "state"), str(conf)], check=True)
            rotations += 1
            time.sleep(1.1)  # dateformat has one-second resolution
    assert writer.wait(60) == 0
    assert rotations >= 2, "the writer finished before logrotate could rotate twice"
    seqs = []
    for path in log_dir.iterdir():
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as f:
            seqs += [int(m.group(1)) for m in re.finditer(r'"seq": (\d+)', f.read())]
    assert len(list(log_dir.iterdir())) >= 3
    assert sorted(seqs) == list(range(count))


@needs
def test_unit_with_the_http_drop_in_stays_at_most_2(tmp_path: Path) -> None:
    """With systemd/http.conf (loopback IP sockets for the HTTP side) the unit still verifies and rates <= 2.0."""
    unit = local_unit(tmp_path)
    drop_in = (REPO / "systemd" / "http.conf").read_text()
    unit.write_text(unit.read_text() + "\n" + "\n".join(x for x in drop_in.splitlines() if not x.startswith("#")))
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)], capture_output=True, text=True)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match and float(match.group(1)) <= 2.0, result.stdout
    assert "PrivateNetwork=no" in unit.read_text()


def _exposure(unit: Path) -> float:
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)], capture_output=True, text=True)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout
    return float(match.group(1))


@needs
@pytest.mark.parametrize("drop_in", ["queue.conf", "events.conf"])
def test_unit_with_a_network_drop_in_stays_at_most_2(tmp_path: Path, drop_in: str) -> None:
    """With systemd/queue.conf (IP sockets to the broker) or events.conf (to webhook receivers)
    the watcher's unit verifies and rates <= 2.0."""
    unit = local_unit(tmp_path)
    text = unit.read_text()
    section = ""
    for line in (REPO / "systemd" / drop_in).read_text().splitlines():
        if line.startswith("["):
            section = line
        elif line and not line.startswith("#"):  # merged as a drop-in would be: after its section's header
            text = text.replace(f"{section}\n", f"{section}\n{line}\n", 1)
    unit.write_text(text)
    assert _exposure(unit) <= 2.0 and "IPAddressAllow=localhost" in text


@needs
def test_worker_unit_verifies_and_rates_at_most_2(tmp_path: Path) -> None:
    """The worker template, instantiated for GPU 0, verifies cleanly and rates 2.0 or lower."""
    binary = Path(sys.executable).parent / "unet-matting"
    text = (REPO / "systemd" / "unet-matting-worker@.service").read_text()
    unit = tmp_path / "unet-matting-worker@0.service"
    unit.write_text(text.replace("/opt/unet-matting/venv/bin/unet-matting", str(binary)))
    assert _exposure(unit) <= 2.0
    assert "Restart=always" in text and "Type=notify" in text and "CUDA_VISIBLE_DEVICES=%i" in text
